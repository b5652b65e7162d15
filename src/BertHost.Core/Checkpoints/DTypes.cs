using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Checkpoints;

/// <summary>The dtypes the checkpoint readers and writers support, in safetensors spelling.</summary>
public static class DTypes
{
    private static readonly (string Name, ScalarType Type, int Size)[] Table =
    [
        ("F32", ScalarType.Float32, 4),
        ("F16", ScalarType.Float16, 2),
        ("BF16", ScalarType.BFloat16, 2),
        ("F64", ScalarType.Float64, 8),
        ("I64", ScalarType.Int64, 8),
        ("I32", ScalarType.Int32, 4),
        ("I16", ScalarType.Int16, 2),
        ("I8", ScalarType.Int8, 1),
        ("U8", ScalarType.Byte, 1),
        ("BOOL", ScalarType.Bool, 1),
    ];

    /// <summary>The supported names: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL.</summary>
    public static IReadOnlyList<string> Names { get; } = Table.Select(t => t.Name).ToArray();

    public static bool IsSupported(string name) => Table.Any(t => t.Name == name);

    /// <summary>The TorchSharp scalar type for a safetensors dtype name; throws <see cref="ArgumentException"/> when unsupported.</summary>
    public static ScalarType ToScalarType(string name)
    {
        foreach (var t in Table) if (t.Name == name) return t.Type;
        throw new ArgumentException($"unsupported dtype '{name}' (supported: {string.Join(", ", Names)})", nameof(name));
    }

    /// <summary>The safetensors dtype name for a TorchSharp scalar type; throws <see cref="ArgumentException"/> when unsupported.</summary>
    public static string FromScalarType(ScalarType type)
    {
        foreach (var t in Table) if (t.Type == type) return t.Name;
        throw new ArgumentException($"unsupported tensor dtype {type} (supported: {string.Join(", ", Names)})", nameof(type));
    }

    /// <summary>Bytes per element of a safetensors dtype name.</summary>
    public static int ElementSize(string name)
    {
        foreach (var t in Table) if (t.Name == name) return t.Size;
        throw new ArgumentException($"unsupported dtype '{name}'", nameof(name));
    }
}
