namespace BertHost.Core.Checkpoints;

/// <summary>
/// A stored tensor's name (exactly as stored), dtype in safetensors spelling ("F32", "F16", "BF16", "F64", "I64", "I32",
/// "I16", "I8", "U8", "BOOL") and shape (empty for a 0-dim scalar).
/// </summary>
public sealed record TensorInfo(string Name, string DType, long[] Shape)
{
    /// <summary>Number of elements (1 for a scalar, 0 when any dimension is 0).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (var d in Shape) n = checked(n * d);
            return n;
        }
    }

    public override string ToString() => $"{Name} {DType}[{string.Join(",", Shape)}]";
}
