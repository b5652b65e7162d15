using BertHost.Core.Backends;

namespace BertHost.Core.Bert;

/// <summary>
/// The kernels a model's inference passes use besides libtorch's own operators, chosen once when a body is loaded
/// (the body's backend): int8 projections, oneDNN projections on prepacked weights, and the CPU attention core. Passes that
/// need gradients never use them (the kernels have no backward).
/// </summary>
/// <param name="Packed">Prepacked Linear weights (null: libtorch's Linear for every projection).</param>
/// <param name="CpuAttention">Whether the attention core may run on <see cref="Backends.CpuAttention"/> where it serves
/// the pass (float32 on a CPU with AVX-512 or AVX2, no gradients); otherwise libtorch's SDPA.</param>
/// <param name="Quantized">Dynamic int8 projections (null: none); they take precedence over packed float32 weights.</param>
/// <param name="LowRankRows">Whether LoRA updates may be added by <see cref="Backends.LowRankRows"/> where it serves the
/// pass (set by a body whose load-time check agreed); otherwise libtorch's GEMMs add them.</param>
public sealed record BertKernels(PrepackedWeights? Packed, bool CpuAttention, QuantizedWeights? Quantized = null, bool LowRankRows = false)
{
    /// <summary>What a model has until a body chooses: libtorch's projections, the CPU attention core where it serves.</summary>
    public static BertKernels Default { get; } = new(null, true);
}

/// <summary>A module whose inference arithmetic follows the model's <see cref="BertKernels"/>.</summary>
internal interface IUsesKernels
{
    BertKernels Kernels { set; }
}
