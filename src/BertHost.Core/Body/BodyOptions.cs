using BertHost.Core.Backends;
using BertHost.Core.Bert;

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

    /// <summary>
    /// <c>none</c> (default) or <c>dynamic_int8</c>: the Linear layers of a float32 CPU body run as int8 with dynamic
    /// activation quantization (see <see cref="QuantizedWeights"/>); everything else stays float32.
    /// </summary>
    public string Quantize { get; init; } = QuantizeModes.None;

    /// <summary>Linear module names (HF, e.g. <c>encoder.layer.5.output.dense</c>; <c>*</c> wildcards) kept in float32 when quantizing.</summary>
    public IReadOnlyList<string> QuantizeExclude { get; init; } = [];

    /// <summary>
    /// Refuse bfloat16 or float16 on a CPU without hardware for them (AVX512-BF16/AMX-BF16, AVX512-FP16/AMX-FP16), where
    /// libtorch emulates them several times slower than float32: set for bodies that serve.
    /// </summary>
    public bool RefuseEmulatedPrecision { get; init; }

    /// <summary>Row limit of the packed weights instead of measuring it at load (tests: the measurement takes seconds).</summary>
    internal long? PackedMaxRows { get; init; }

    /// <summary>
    /// Whether an int8 body runs each layer's query, key and value as one stacked GEMM (the default); off only to
    /// measure or test the stacked path against three separate ones.
    /// </summary>
    internal bool StackInt8Projections { get; init; } = true;

    /// <summary>The int8 GEMMs to try on each projection shape, in order (null: oneDNN then fbgemm where the CPU has
    /// VNNI, fbgemm alone elsewhere); set only to measure or test one kernel against the other.</summary>
    internal IReadOnlyList<Backends.Int8Kernel>? Int8Kernels { get; init; }

    /// <summary>Faults injected into the load-time checks of the fast paths (tests only).</summary>
    internal FastPathFaults? Faults { get; init; }

    /// <summary>
    /// A LoRA adapter merged into the weights once they are loaded, before the fingerprint's body is packed or quantized
    /// (so the fast paths serve the merged weights). The fingerprint stays the base body's: a head trained with the
    /// adapter is bound to the base. For a head served with <c>adapter: merge</c> on a private copy.
    /// </summary>
    public Lora.LoraAdapter? MergeAdapter { get; init; }
}

/// <summary>The values of <see cref="BodyOptions.Quantize"/>.</summary>
public static class QuantizeModes
{
    public const string None = "none";
    public const string DynamicInt8 = "dynamic_int8";

    public static IReadOnlyList<string> All { get; } = [None, DynamicInt8];
}
