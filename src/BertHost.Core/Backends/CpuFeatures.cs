using System.Runtime.Intrinsics.X86;

namespace BertHost.Core.Backends;

/// <summary>
/// Instruction-set extensions the low-precision kernels depend on, read from CPUID (so a virtual machine reports what
/// its guest may use). .NET's intrinsics classes do not cover AVX512-BF16 or AMX.
/// </summary>
internal static class CpuFeatures
{
    /// <summary>AVX512-BF16 (CPUID 7.1 EAX bit 5) or AMX-BF16 (CPUID 7.0 EDX bit 22): bfloat16 products in hardware.</summary>
    public static bool NativeBFloat16 => X86Base.IsSupported && (Bit(7, 1, Register.Eax, 5) || Bit(7, 0, Register.Edx, 22));

    /// <summary>AVX512-FP16 (CPUID 7.0 EDX bit 23) or AMX-FP16 (CPUID 7.1 EAX bit 21): float16 products in hardware.</summary>
    public static bool NativeFloat16 => X86Base.IsSupported && (Bit(7, 0, Register.Edx, 23) || Bit(7, 1, Register.Eax, 21));

    /// <summary>AVX512-VNNI (CPUID 7.0 ECX bit 11) or AVX-VNNI (CPUID 7.1 EAX bit 4): int8 dot products without int16 saturation.</summary>
    public static bool Vnni => X86Base.IsSupported && (Bit(7, 0, Register.Ecx, 11) || Bit(7, 1, Register.Eax, 4));

    private enum Register { Eax, Ebx, Ecx, Edx }

    private static bool Bit(int leaf, int subLeaf, Register register, int bit)
    {
        var (maxLeaf, _, _, _) = X86Base.CpuId(0, 0);
        if (leaf > maxLeaf) return false;
        var (eax, ebx, ecx, edx) = X86Base.CpuId(leaf, subLeaf);
        var value = register switch { Register.Eax => eax, Register.Ebx => ebx, Register.Ecx => ecx, _ => edx };
        return (value & (1 << bit)) != 0;
    }
}
