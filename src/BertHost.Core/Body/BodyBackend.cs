using BertHost.Core.Backends;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using static TorchSharp.torch;

namespace BertHost.Core.Body;

/// <summary>
/// What runs a body's inference arithmetic, chosen once when the body is loaded and set as the model's
/// <see cref="BertKernels"/>: prepacked oneDNN weights and the CPU attention core where they serve this device and
/// dtype and agree with the plain path on this machine (their load-time checks), libtorch's operators otherwise. Owns
/// the packed weights.
/// </summary>
public sealed class BodyBackend : IDisposable
{
    private readonly List<string> _fallbacks = [];

    private BodyBackend() { }

    /// <summary>The oneDNN-layout weight copies inference passes use (null when not prepacked).</summary>
    public PrepackedWeights? Prepacked { get; private set; }

    /// <summary>The int8 projections (null unless <see cref="BodyOptions.Quantize"/> asks for them).</summary>
    public QuantizedWeights? Quantized { get; private set; }

    /// <summary>Why the weights are not prepacked (null when they are).</summary>
    public string? NotPrepackedReason { get; private set; }

    /// <summary>Why the attention core runs on SDPA (null when the CPU kernel serves).</summary>
    public string? AttentionCoreReason { get; private init; }

    /// <summary>Why LoRA updates are added by libtorch's GEMMs (null when <see cref="LowRankRows"/> serves them).</summary>
    public string? LoraUpdatesReason { get; private set; }

    /// <summary>Fast paths that failed their load-time check on this machine, each with what serves instead.</summary>
    public IReadOnlyList<string> Fallbacks => _fallbacks;

    /// <summary>Chooses the kernels of <paramref name="model"/> (already on its device and dtype) and sets them on it.</summary>
    /// <param name="weightsRead">Still reading the model's weights: waited for before the int8 path drops their float copies.</param>
    public static BodyBackend Choose(BertModel model, BodyOptions options, Task? weightsRead = null)
    {
        var weight = model.embeddings.word_embeddings.weight!;
        var (device, dtype) = (weight.device_type, weight.dtype);
        if (options.RefuseEmulatedPrecision && device == TorchSharp.DeviceType.CPU && EmulatedPrecision(dtype) is { } problem)
            throw new BodyLoadException(problem);
        var fallbacks = new List<string>();
        var backend = new BodyBackend { AttentionCoreReason = ChooseAttentionCore(model, options, device, dtype, fallbacks) };
        backend._fallbacks.AddRange(fallbacks);
        backend.LoraUpdatesReason = ChooseLoraUpdates(model, options, device, dtype, backend._fallbacks);
        if (device == TorchSharp.DeviceType.CPU) NativeHeap.EnsureTuned();
        if (options.Quantize == QuantizeModes.DynamicInt8)
        {
            try
            {
                backend.Quantized = QuantizedWeights.Quantize(model, options.QuantizeExclude, out var notQuantized, options.Faults,
                    fuse: options.StackInt8Projections ? [.. model.encoder.layer.Select(l => l.attention.@self.Projections.ToArray())] : null,
                    kernels: options.Int8Kernels);
                if (notQuantized is not null) backend._fallbacks.Add("body.quantize dynamic_int8: the body serves in float32: " + notQuantized);
            }
            catch (ArgumentException e)
            {
                throw new BodyLoadException($"body.quantize {QuantizeModes.DynamicInt8}: {e.Message}", e);
            }
            backend._fallbacks.AddRange((backend.Quantized?.Projections ?? []).Where(p => p.Reason is not null)
                .Select(p => p.KernelName is { } kernel ? $"projection {p.Shape} runs on {kernel}: {p.Reason}" : $"projection {p.Shape} stays float32: {p.Reason}"));
            if (backend.Quantized?.StackedFallback is { } stackedFallback)
                backend._fallbacks.Add("query, key and value run as one stacked int8 GEMM on " + stackedFallback);
            if (backend.Quantized?.StackedReason is { } stacked)
                backend._fallbacks.Add("query, key and value run as three int8 GEMMs: the stacked " + stacked);
            if (backend.Quantized is { } int8)
            {
                var config = model.Config;
                if (RowEpilogueCheck.Disagreement(config.HiddenSize, config.IntermediateSize, config.LayerNormEps, options.Faults?.Int8RowEpilogue == true) is { } epilogue)
                    backend._fallbacks.Add("int8 projections end in libtorch's operators (add and layer_norm, gelu): the " + epilogue);
                else
                    int8.RowEpilogues = true;
                if (weightsRead is not null) BertBody.WaitQuietly(weightsRead);
                int8.ReleaseFloatWeights();
                // The freed weights sit between live blocks of the heap: only a trim hands their pages back.
                NativeHeap.ReleaseFreeMemory();
            }
            model.Kernels = model.Kernels with { Quantized = backend.Quantized };
        }
        else if (options.Quantize != QuantizeModes.None)
        {
            throw new BodyLoadException($"body.quantize must be one of {string.Join(", ", QuantizeModes.All)}, got '{options.Quantize}'");
        }
        if (!options.PrepackWeights)
        {
            backend.NotPrepackedReason = "not asked for";
            return backend;
        }
        // Linears that run in int8 need no float32 copy.
        var quantized = backend.Quantized;
        backend.Prepacked = PrepackedWeights.Pack(model, out var why, options.PackedMaxRows, FusedEpilogues(model.Config), options.Faults,
            include: quantized is null ? null : l => !quantized.IsQuantized(l));
        backend.NotPrepackedReason = backend.Prepacked is null ? why : null;
        backend._fallbacks.AddRange((backend.Prepacked?.Projections ?? []).Where(p => p.Reason is not null)
            .Select(p => $"projection {p.Shape} ({p.DType}) runs {p.Layout}: {p.Reason}"));
        if (why?.StartsWith(PrepackedWeights.DisagreedEverywhere, StringComparison.Ordinal) == true)
            backend._fallbacks.Add("Linear weights not prepacked: " + why);
        model.Kernels = model.Kernels with { Packed = backend.Prepacked };
        return backend;
    }

    /// <summary>Why serving in <paramref name="dtype"/> on this CPU would be emulated (null when it runs in hardware).</summary>
    internal static string? EmulatedPrecision(ScalarType dtype) => dtype switch
    {
        ScalarType.BFloat16 when !CpuFeatures.NativeBFloat16 =>
            "dtype bfloat16 would be emulated on this CPU (it has neither AVX512-BF16 nor AMX-BF16) and run several times slower than float32; serve float32, or body.quantize: dynamic_int8",
        ScalarType.Float16 when !CpuFeatures.NativeFloat16 =>
            "dtype float16 would be emulated on this CPU (it has neither AVX512-FP16 nor AMX-FP16) and run several times slower than float32; serve float32, or bfloat16 where the CPU has AVX512-BF16",
        _ => null,
    };

    /// <summary>
    /// Drops the packed copies before <paramref name="model"/>'s weights change in place (training the served body): from
    /// then on its projections run on libtorch's Linear.
    /// </summary>
    public void ReleasePackedWeights(BertModel model)
    {
        if (Prepacked is null) return;
        model.Kernels = model.Kernels with { Packed = null };
        Prepacked.Dispose();
        Prepacked = null;
        NotPrepackedReason = "released: the body's weights were trained in place";
    }

    /// <summary>
    /// Leaves the CPU attention kernel on where it may serve this body and agrees with SDPA here; returns why SDPA
    /// serves otherwise.
    /// </summary>
    private static string? ChooseAttentionCore(BertModel model, BodyOptions options, TorchSharp.DeviceType device, ScalarType dtype, List<string> fallbacks)
    {
        model.UseCpuAttentionKernel = options.CpuAttentionKernel;
        if (!options.CpuAttentionKernel) return "turned off (body.attention_kernel: false)";
        if (device != TorchSharp.DeviceType.CPU || dtype != ScalarType.Float32) return "the kernel runs float32 on the CPU only";
        if (!CpuAttention.Supports(device, dtype, model.Config.HeadDim))
            return $"no AVX-512 or AVX2 kernel for head size {model.Config.HeadDim} on this CPU (multiples of 16 or 8 floats)";
        if (AttentionKernelCheck.Disagreement(model.Config.NumAttentionHeads, model.Config.HeadDim, options.Faults?.AttentionKernel == true) is not { } problem)
            return null;
        model.UseCpuAttentionKernel = false;
        fallbacks.Add("attention core runs on SDPA: the CPU kernel failed its load-time check: " + problem);
        return "the CPU kernel failed its load-time check: " + problem;
    }

    /// <summary>Turns the CPU row kernel for LoRA updates on where it serves and agrees with libtorch here; returns why not otherwise.</summary>
    private static string? ChooseLoraUpdates(BertModel model, BodyOptions options, TorchSharp.DeviceType device, ScalarType dtype, List<string> fallbacks)
    {
        if (!LowRankRows.Supports(device, dtype)) return "the row kernel runs float32 on the CPU only";
        if (LowRankRowsCheck.Disagreement(options.Faults?.LowRankRows == true) is { } problem)
        {
            fallbacks.Add("LoRA updates run on libtorch's GEMMs: the row kernel failed its load-time check: " + problem);
            return "the row kernel failed its load-time check: " + problem;
        }
        model.Kernels = model.Kernels with { LowRankRows = true };
        return null;
    }

    /// <summary>The activation the intermediate projection fuses into oneDNN's kernel, with libtorch's form to check it against.</summary>
    private static IReadOnlyDictionary<string, Func<Tensor, Tensor>> FusedEpilogues(BertConfig config) =>
        Activations.Get(config.HiddenAct) is { OneDnnEpilogue: { } epilogue } activation
            ? new Dictionary<string, Func<Tensor, Tensor>> { [epilogue] = activation.Apply }
            : new Dictionary<string, Func<Tensor, Tensor>>();

    public void Dispose()
    {
        Prepacked?.Dispose();
        Prepacked = null;
        Quantized?.Dispose();
        Quantized = null;
    }
}
