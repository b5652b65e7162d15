using BertHost.Core.Backends;
namespace BertHost.Core.Body;

/// <summary>Where and in which precision the body runs.</summary>
public sealed record BodyOptions
{
    /// <summary><c>auto</c> (CUDA when available, else CPU), <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    public string Device { get; init; } = "auto";

    /// <summary><c>float32</c> (default), <c>bfloat16</c> or <c>float16</c>.</summary>
    public string DType { get; init; } = "float32";

    /// <summary>Cap on the sequence length inputs are truncated to (≤ the model's own limit); null = the model's limit.</summary>
    public int? MaxSequenceLength { get; init; }

    /// <summary>
    /// Keep a oneDNN-layout copy of every Linear weight for inference on the CPU in float32 (faster passes, twice the
    /// Linear weights' memory; see <see cref="PrepackedWeights"/>). Only for bodies whose weights stay fixed while served.
    /// </summary>
    public bool PrepackWeights { get; init; }

    /// <summary>
    /// Run the attention core of float32 CPU inference passes with <see cref="CpuAttention"/> where the CPU has
    /// AVX-512 or AVX2 (see <see cref="BertModel.UseCpuAttentionKernel"/>); false keeps libtorch's SDPA (for comparisons).
    /// </summary>
    public bool CpuAttentionKernel { get; init; } = true;

    /// <summary>Row limit of the packed weights instead of measuring it at load (tests: the measurement takes seconds).</summary>
    internal long? PackedMaxRows { get; init; }

    /// <summary>Faults injected into the load-time checks of the fast paths (tests only).</summary>
    internal FastPathFaults? Faults { get; init; }

    /// <summary>Return every layer's hidden states from <see cref="BertBody.Forward(BertHost.Core.Text.PaddedBatch,bool)"/> by default.</summary>
    public bool OutputHiddenStates { get; init; }
}
