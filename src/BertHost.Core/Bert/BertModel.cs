using BertHost.Abstractions;
using static TorchSharp.torch;
using BertHost.Core.Backends;

namespace BertHost.Core.Bert;

/// <summary>
/// The BERT encoder (HF <c>BertModel</c>). Field names equal checkpoint keys, so <c>state_dict()</c> names are exactly
/// <c>embeddings.word_embeddings.weight</c>, <c>encoder.layer.3.attention.self.query.bias</c>, <c>pooler.dense.weight</c>.
/// </summary>
public sealed class BertModel : nn.Module<Tensor, Tensor, Tensor, BodyOutput>
{
    public readonly BertEmbeddings embeddings;
    public readonly BertEncoder encoder;
    public readonly BertPooler? pooler;

    public BertModel(BertConfig config, bool addPoolingLayer = true) : base(nameof(BertModel))
    {
        Config = config;
        embeddings = new BertEmbeddings(config);
        encoder = new BertEncoder(config);
        if (addPoolingLayer) pooler = new BertPooler(config);
        RegisterComponents();
    }

    public BertConfig Config { get; }

    public bool HasPooler => pooler is not null;

    /// <summary>The kernels inference passes use besides libtorch's (<see cref="BertKernels"/>); every module follows it.</summary>
    public BertKernels Kernels
    {
        get => _kernels;
        set
        {
            _kernels = value;
            foreach (var module in modules().OfType<IUsesKernels>()) module.Kernels = value;
        }
    }

    private BertKernels _kernels = BertKernels.Default;

    /// <summary>
    /// Inference passes in float32 on a CPU with AVX-512 or AVX2 run the attention core with
    /// <see cref="Backends.CpuAttention"/> rather than libtorch's SDPA (the same values to float rounding, faster) whenever
    /// no projection needs a gradient. On by default; off gives the SDPA path, which training always takes.
    /// </summary>
    public bool UseCpuAttentionKernel
    {
        get => Kernels.CpuAttention;
        set => Kernels = Kernels with { CpuAttention = value };
    }

    public override BodyOutput forward(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask) =>
        Forward(inputIds, tokenTypeIds, attentionMask, outputHiddenStates: false);

    /// <param name="inputIds">[B,T] int64.</param>
    /// <param name="tokenTypeIds">[B,T] int64.</param>
    /// <param name="attentionMask">[B,T] 1 for tokens to attend to, 0 for padding.</param>
    /// <param name="outputHiddenStates">Also return the embedding output and every layer's output.</param>
    public BodyOutput Forward(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, bool outputHiddenStates)
    {
        CheckInputs(inputIds, tokenTypeIds, attentionMask);
        return ForwardPadded(inputIds, tokenTypeIds, attentionMask, HasPadding(attentionMask), outputHiddenStates);
    }

    private BodyOutput ForwardPadded(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, bool hasPadding, bool outputHiddenStates)
    {
        // Without padding the mask is a no-op; leaving it out lets libtorch pick its fused attention kernels, which
        // refuse an explicit mask.
        using var maskBias = hasPadding ? AdditiveMask(attentionMask, embeddings.word_embeddings.weight!.dtype) : null;
        ProjectionUpdates.UsePaddedRows(inputIds.shape[0], inputIds.shape[1]);
        var embedded = embeddings.call(inputIds, tokenTypeIds);
        List<Tensor>? states = outputHiddenStates ? [embedded] : null;
        var last = encoder.Run(embedded, maskBias, states);
        if (!outputHiddenStates) embedded.Dispose();
        var pooled = pooler?.call(last);
        return new BodyOutput(last, pooled, attentionMask.alias(), states);
    }

    private static bool HasPadding(Tensor attentionMask)
    {
        using var min = attentionMask.min();
        return min.item<long>() == 0;
    }

    /// <summary>
    /// Inference-only variant of <see cref="Forward(Tensor, Tensor, Tensor, bool)"/> that skips padded tokens in every
    /// Linear and LayerNorm (<see cref="BertEncoder.RunPacked"/>): real tokens get the same values, padded positions of the
    /// hidden states are zero instead of the values a padded computation gives them. Falls back to the padded pass in
    /// training mode (dropout) and for batches without padding.
    /// </summary>
    public BodyOutput ForwardSkippingPadding(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask, bool outputHiddenStates)
    {
        CheckInputs(inputIds, tokenTypeIds, attentionMask);
        var hasPadding = HasPadding(attentionMask);
        if (training || !hasPadding) return ForwardPadded(inputIds, tokenTypeIds, attentionMask, hasPadding, outputHiddenStates);
        using var maskBias = AdditiveMask(attentionMask, embeddings.word_embeddings.weight!.dtype);
        using var packing = new TokenPacking(attentionMask, maskBias);
        ProjectionUpdates.Current?.UseRows(packing.Starts);
        using var embedded = embeddings.call(inputIds, tokenTypeIds);
        List<Tensor>? states = outputHiddenStates ? [] : null;
        var last = encoder.RunPacked(embedded, packing, states);
        var pooled = pooler?.call(last);
        return new BodyOutput(last, pooled, attentionMask.alias(), states);
    }

    /// <summary>
    /// (1 - mask) * dtype.min, shaped [B,1,1,T] to broadcast over heads and query positions. transformers uses the
    /// dtype's minimum rather than -10000 so that masked scores vanish in half precision too.
    /// </summary>
    private static Tensor AdditiveMask(Tensor attentionMask, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var keep = attentionMask.to(dtype);
        var bias = keep.neg().add_(1.0).mul_(finfo(dtype).min);
        return bias.unsqueeze(1).unsqueeze(1).MoveToOuterDisposeScope();
    }

    private void CheckInputs(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask)
    {
        if (inputIds.dim() != 2) throw new ArgumentException($"input_ids must be [batch, sequence], got shape [{string.Join(",", inputIds.shape)}]");
        if (!inputIds.shape.SequenceEqual(tokenTypeIds.shape) || !inputIds.shape.SequenceEqual(attentionMask.shape))
            throw new ArgumentException($"input_ids [{string.Join(",", inputIds.shape)}], token_type_ids [{string.Join(",", tokenTypeIds.shape)}] and attention_mask [{string.Join(",", attentionMask.shape)}] must have the same shape");
        if (inputIds.shape[1] > Config.MaxPositionEmbeddings)
            throw new ArgumentException($"sequence length {inputIds.shape[1]} exceeds max_position_embeddings ({Config.MaxPositionEmbeddings})");
    }
}
