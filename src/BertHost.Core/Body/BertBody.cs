using BertHost.Abstractions.Text;
using TorchSharp;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Core.Backends;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Text;
using static TorchSharp.torch;

namespace BertHost.Core.Body;

/// <summary>
/// The shared body: one <see cref="BertModel"/> loaded from a Hugging Face model folder, its tokenizer, the device and
/// dtype it runs in, and the fingerprint heads bind to. Inference passes run in eval mode without autograd.
/// </summary>
public sealed class BertBody : IDisposable
{
    private BertBody(string folder, BertConfig config, BertTextTokenizer tokenizer, BertModel model, Device device,
        ScalarType dtype, string fingerprint, BodyLoadReport report, int? maxSequenceLength)
    {
        MaxSequenceLength = ModelMaxSequenceLength(config, tokenizer, maxSequenceLength);
        Folder = folder;
        Config = config;
        Tokenizer = tokenizer;
        Model = model;
        Device = device;
        DType = dtype;
        Fingerprint = fingerprint;
        LoadReport = report;
    }

    public string Folder { get; }
    public BertConfig Config { get; }
    public BertTextTokenizer Tokenizer { get; }
    public BertModel Model { get; }
    public Device Device { get; }
    public ScalarType DType { get; }

    /// <summary>See <see cref="BodyFingerprint"/>.</summary>
    public string Fingerprint { get; }

    /// <summary>The fingerprint without the pooler: what task models without a pooler are matched against.</summary>
    public required string EncoderFingerprint { get; init; }

    public BodyLoadReport LoadReport { get; }

    /// <summary>The kernels chosen at load for inference passes (see <see cref="BodyBackend"/>).</summary>
    public required BodyBackend Backend { get; init; }

    /// <summary>The oneDNN-layout weight copies inference passes use (null when not prepacked).</summary>
    public PrepackedWeights? Prepacked => Backend.Prepacked;

    /// <summary>Why the weights are not prepacked (null when they are).</summary>
    public string? NotPrepackedReason => Backend.NotPrepackedReason;

    /// <summary>The int8 projections (null unless the body was loaded with <see cref="BodyOptions.Quantize"/>).</summary>
    public QuantizedWeights? Quantized => Backend.Quantized;

    /// <summary>The number format each part of an inference pass computes in (what <c>GET /v1/body</c> reports).</summary>
    public IReadOnlyDictionary<string, string> PrecisionByPart
    {
        get
        {
            var dtype = DType.ToString().ToLowerInvariant();
            var projections = Quantized is { } q
                ? $"int8 ({q.Projections.Sum(p => p.Int8Linears)} of {q.Projections.Sum(p => p.Int8Linears + p.FloatLinears)} Linears; " +
                  $"weights per output channel, activations per row{(q.ReducedRange ? ", 7-bit" : "")}), the rest {dtype}"
                : dtype;
            return new Dictionary<string, string>
            {
                ["embeddings"] = dtype,
                ["projections"] = projections,
                ["attention_core"] = dtype,
                ["layer_norm"] = dtype,
                ["gelu"] = dtype,
            };
        }
    }

    /// <summary>
    /// What computes the attention core of inference passes: <c>cpu_avx512</c> or <c>cpu_avx2</c>
    /// (<see cref="CpuAttention"/>) or <c>sdpa</c> (libtorch's scaled_dot_product_attention: other devices and dtypes,
    /// CPUs without AVX2, head sizes the kernel does not take, <see cref="BodyOptions.CpuAttentionKernel"/> off, or a
    /// failed load-time check).
    /// </summary>
    public string AttentionCore =>
        Model.UseCpuAttentionKernel && CpuAttention.Supports(Device.type, DType, Config.HeadDim) ? CpuAttention.InstructionSet(Config.HeadDim)! : "sdpa";

    /// <summary>Why <see cref="AttentionCore"/> is <c>sdpa</c> (null when the CPU kernel serves).</summary>
    public string? AttentionCoreReason => Backend.AttentionCoreReason;

    /// <summary>
    /// Fast paths that failed their load-time check on this machine, each with what serves instead (empty when every
    /// kernel selected at load agreed with the plain path).
    /// </summary>
    public IReadOnlyList<string> FastPathFallbacks => Backend.Fallbacks;

    /// <summary>Drops the packed weight copies before a trainer changes this body's weights in place.</summary>
    public void ReleasePackedWeights() => Backend.ReleasePackedWeights(Model);

    /// <summary>
    /// Loads <c>config.json</c>, <c>vocab.txt</c> (+ <c>tokenizer_config.json</c>) and the weights of a Hugging Face model
    /// folder. Every problem is a <see cref="BodyLoadException"/> whose message names the file and what is wrong.
    /// </summary>
    public static BertBody Load(string folder, BodyOptions? options = null)
    {
        options ??= new BodyOptions();
        return LoadWeights(ReadPrelude(folder, options), options);
    }

    /// <summary>
    /// The first part of <see cref="Load"/>: the settings, <c>config.json</c> and the tokenizer (their problems are thrown
    /// here). <see cref="PreparedBody.Load"/> then reads the weights, while the caller tokenizes its inputs on other
    /// threads with <see cref="PreparedBody.Tokenizer"/>, the body's own.
    /// </summary>
    public static PreparedBody Prepare(string folder, BodyOptions? options = null)
    {
        options ??= new BodyOptions();
        var prelude = ReadPrelude(folder, options);
        return new PreparedBody(prelude.Tokenizer, ModelMaxSequenceLength(prelude.Config, prelude.Tokenizer, options.MaxSequenceLength),
            () => LoadWeights(prelude, options));
    }

    /// <summary>What a load reads before the weights: the settings checked, the config and the tokenizer.</summary>
    private sealed record Prelude(string Folder, ScalarType DType, Device Device, BertConfig Config, BertTextTokenizer Tokenizer);

    private static Prelude ReadPrelude(string folder, BodyOptions options)
    {
        if (!Directory.Exists(folder)) throw new BodyLoadException($"model folder '{folder}' does not exist");
        folder = Path.GetFullPath(folder);

        // Settings errors come first: they are cheaper to find than a bad checkpoint.
        ScalarType dtype;
        Device device;
        try
        {
            dtype = DeviceSelection.ParseDType(options.DType);
            device = DeviceSelection.ResolveDevice(options.Device);
        }
        catch (ArgumentException e)
        {
            throw new BodyLoadException(e.Message, e);
        }

        var config = Wrap(() => BertConfig.Load(Path.Combine(folder, "config.json")));
        var tokenizer = Wrap(() => BertTextTokenizer.FromFolder(folder));
        if (options.MaxSequenceLength is { } cap && (cap < 2 || cap > ModelMaxSequenceLength(config, tokenizer)))
            throw new BodyLoadException($"max_sequence_length {cap} is outside what the model accepts (2 to {ModelMaxSequenceLength(config, tokenizer)}: max_position_embeddings and the tokenizer's model_max_length)");
        if (tokenizer.VocabSize > config.VocabSize)
            throw new BodyLoadException($"{Path.Combine(folder, "vocab.txt")} has {tokenizer.VocabSize} tokens but config.json says vocab_size {config.VocabSize}: token ids would fall outside the embedding table");
        return new Prelude(folder, dtype, device, config, tokenizer);
    }

    private static BertBody LoadWeights(Prelude prelude, BodyOptions options)
    {
        var (folder, dtype, device, config, tokenizer) = prelude;
        using var source = Wrap(() => CheckpointFiles.OpenFolder(folder));
        // Every parameter is overwritten from the checkpoint below (or the load fails): no random initialisation first.
        BertModel model;
        using (BertLayers.Uninitialized()) model = new BertModel(config, addPoolingLayer: BertCheckpointLoader.HasPooler(source));
        Task<(string Body, string Encoder)>? fingerprints = null;
        try
        {
            var report = Wrap(() => BertCheckpointLoader.Load(model, source));
            // The fingerprints are of the weights as stored. Hashed on another core while the kernels are chosen (a
            // fifth of a MiniLM load): choosing only reads the weights until the int8 path drops their float copies,
            // which waits for the hash; merging an adapter or converting the model changes them, so waits first.
            fingerprints = Task.Run(() => BodyFingerprint.ComputeBoth(model, Path.Combine(folder, "vocab.txt")));
            if (options.MergeAdapter is not null || device.type != DeviceType.CPU || dtype != ScalarType.Float32) WaitQuietly(fingerprints);
            options.MergeAdapter?.MergeInto(model);
            model.to(device).to(dtype);
            model.eval();
            var backend = BodyBackend.Choose(model, options, fingerprints);
            var (fingerprint, encoderFingerprint) = fingerprints.GetAwaiter().GetResult();
            return new BertBody(folder, config, tokenizer, model, device, dtype, fingerprint, report, options.MaxSequenceLength)
            {
                EncoderFingerprint = encoderFingerprint,
                Backend = backend,
            };
        }
        catch
        {
            if (fingerprints is not null) WaitQuietly(fingerprints); // still reading the weights
            model.Dispose();
            throw;
        }
    }

    /// <summary>Waits for <paramref name="task"/>; its failure is for whoever reads its result.</summary>
    internal static void WaitQuietly(Task task) => ((IAsyncResult)task).AsyncWaitHandle.WaitOne();

    /// <summary>Runs the encoder on an already padded batch (eval, no autograd).</summary>
    public BodyOutput Forward(PaddedBatch batch, bool outputHiddenStates = false)
    {
        var (ids, types, mask) = ToTensors(batch);
        using (ids) using (types) using (mask) return Forward(ids, types, mask, outputHiddenStates);
    }

    private (Tensor Ids, Tensor Types, Tensor Mask) ToTensors(PaddedBatch batch)
    {
        long[] shape = [batch.BatchSize, batch.SequenceLength];
        return (tensor(batch.InputIds, shape, ScalarType.Int64, Device), tensor(batch.TokenTypeIds, shape, ScalarType.Int64, Device),
            tensor(batch.AttentionMask, shape, ScalarType.Int64, Device));
    }

    /// <summary>
    /// The serving pass: like <see cref="Forward(PaddedBatch, bool)"/>, but padded tokens are skipped in every Linear
    /// and LayerNorm (see <see cref="BertModel.ForwardSkippingPadding"/>); their positions in the hidden states are
    /// zero. For consumers that read real tokens only (heads pool and decode under the attention mask).
    /// </summary>
    public BodyOutput ForwardSkippingPadding(PaddedBatch batch, bool outputHiddenStates = false)
    {
        BodyOutput output;
        using (no_grad())
        using (NewDisposeScope())
        {
            var (ids, types, mask) = ToTensors(batch);
            output = Model.ForwardSkippingPadding(ids, types, mask, outputHiddenStates);
            output.MoveToOuterDisposeScope();
        }
        if (Device.type == DeviceType.CPU) NativeHeap.ReleaseFreeMemoryAbove(RetainedHeapBudget(batch));
        return output;
    }

    private long _largestPassBytes;

    /// <summary>
    /// Free heap memory kept for the next passes: twice the largest pass's activations so far (its tokens times the
    /// widths a layer holds at once: the intermediate and about four hidden-sized tensors, float32), at least 64 MiB.
    /// Enough that passes of a steady size reuse their memory without returning to the OS each time (which costs a
    /// page fault per page), small enough that what length-varying passes strand is given back.
    /// </summary>
    private long RetainedHeapBudget(PaddedBatch batch)
    {
        var tokens = batch.Lengths.Sum(l => (long)l);
        var bytes = tokens * (Config.IntermediateSize + 4L * Config.HiddenSize) * sizeof(float);
        _largestPassBytes = Math.Max(_largestPassBytes, bytes);
        return Math.Max(64L << 20, 2 * _largestPassBytes);
    }

    /// <summary>Runs the encoder on [B,T] tensors (eval, no autograd). The result's tensors belong to the caller.</summary>
    public BodyOutput Forward(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, bool outputHiddenStates = false)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var output = Model.Forward(OnDevice(inputIds), OnDevice(tokenTypeIds), OnDevice(attentionMask), outputHiddenStates);
        output.MoveToOuterDisposeScope();
        return output;
    }

    // Tensors already on the body's device are used as they are; copies made here die with the caller's scope.
    private Tensor OnDevice(Tensor t) => t.device == Device ? t : t.to(Device);

    /// <summary>Tokenizes and pads texts (optionally pairs) for this body.</summary>
    public PaddedBatch Encode(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs = null, EncodeOptions? options = null)
    {
        options ??= new EncodeOptions { MaxLength = MaxSequenceLength };
        var encodings = new List<EncodedSequence>(texts.Count);
        for (var i = 0; i < texts.Count; i++)
            encodings.Add(Tokenizer.Encode(texts[i], pairs?[i], options)[0]);
        return PaddedBatch.Create(encodings, Tokenizer.PadTokenId);
    }

    /// <summary>The longest input the body accepts: the position table, the tokenizer's limit and the configured cap.</summary>
    public int MaxSequenceLength { get; }

    /// <summary>What heads are told about this body.</summary>
    public BodyInfo Info => new()
    {
        ModelFolder = Folder,
        HiddenSize = Config.HiddenSize,
        NumHiddenLayers = Config.NumHiddenLayers,
        MaxSequenceLength = MaxSequenceLength,
        HasPooler = Model.HasPooler,
        Fingerprint = Fingerprint,
        EncoderFingerprint = EncoderFingerprint,
        Device = Device,
        DType = DType,
        HiddenDropoutProb = Config.HiddenDropoutProb,
        InitializerRange = Config.InitializerRange,
    };

    private static int ModelMaxSequenceLength(BertConfig config, BertTextTokenizer tokenizer) =>
        Math.Min(config.MaxPositionEmbeddings, tokenizer.Settings.ModelMaxLength);

    private static int ModelMaxSequenceLength(BertConfig config, BertTextTokenizer tokenizer, int? cap) =>
        Math.Min(cap ?? int.MaxValue, ModelMaxSequenceLength(config, tokenizer));

    public void Dispose()
    {
        Backend.Dispose();
        Model.Dispose();
    }

    private static T Wrap<T>(Func<T> load)
    {
        try
        {
            return load();
        }
        catch (Exception e) when (e is BertConfigException or CheckpointException or IOException or InvalidDataException or ArgumentException or FormatException or System.Text.Json.JsonException)
        {
            throw new BodyLoadException(e.Message, e);
        }
    }
}
