namespace BertHost.Core.Backends;

/// <summary>
/// Faults injected into the load-time checks of the fast paths, so tests can show what a body does when a kernel
/// computes wrong numbers on the machine it runs on (the checks see a disagreement; what is served is then checked
/// against the plain path). Never set outside tests.
/// </summary>
internal sealed record FastPathFaults
{
    /// <summary>Packed projections in these layouts (<see cref="PackedLayouts"/>) seem to disagree with libtorch's Linear.</summary>
    public IReadOnlySet<string> PackedLayouts { get; init; } = new HashSet<string>();

    /// <summary>The CPU attention kernel seems to disagree with libtorch's SDPA.</summary>
    public bool AttentionKernel { get; init; }

    /// <summary>int8 projections seem to disagree with libtorch's float32 Linear.</summary>
    public bool Int8 { get; init; }

    /// <summary>Stacked int8 projections (a layer's Q, K and V as one GEMM) seem to disagree with their quantization in float32.</summary>
    public bool Int8Stacked { get; init; }

    /// <summary>oneDNN's int8 projections seem to disagree with their quantization in float32 (fbgemm's still agree).</summary>
    public bool Int8OneDnn { get; init; }

    /// <summary>The int8 projections' row epilogue (residual + LayerNorm) seems to disagree with libtorch's operators.</summary>
    public bool Int8RowEpilogue { get; init; }

    /// <summary>The CPU kernel for LoRA updates seems to disagree with libtorch's GEMMs.</summary>
    public bool LowRankRows { get; init; }
}
