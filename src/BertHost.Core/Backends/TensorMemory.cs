using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>Raw access to a dense CPU float32 tensor's storage for the C# kernels.</summary>
internal static unsafe class TensorMemory
{
    /// <summary>
    /// The first element of <paramref name="x"/> (contiguous, float32, on the CPU). Native storage does not move, so the
    /// pointer may be handed to other threads; the caller keeps <paramref name="x"/> alive while it is used.
    /// </summary>
    public static float* Floats(Tensor x) =>
        (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(MemoryMarshal.Cast<byte, float>(x.bytes)));
}
