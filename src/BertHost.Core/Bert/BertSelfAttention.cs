using BertHost.Core.Backends;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>Multi-head scaled dot-product self-attention (HF <c>BertSelfAttention</c>).</summary>
public sealed class BertSelfAttention : nn.Module<Tensor, Tensor, Tensor>, IUsesKernels
{
    public readonly Linear query;
    public readonly Linear key;
    public readonly Linear value;
    private readonly int _heads;
    private readonly int _headDim;
    private readonly double _dropoutProb;

    public BertSelfAttention(BertConfig config) : base(nameof(BertSelfAttention))
    {
        query = BertLayers.Linear(config.HiddenSize, config.HiddenSize);
        key = BertLayers.Linear(config.HiddenSize, config.HiddenSize);
        value = BertLayers.Linear(config.HiddenSize, config.HiddenSize);
        _heads = config.NumAttentionHeads;
        _headDim = config.HeadDim;
        _dropoutProb = config.AttentionProbsDropoutProb;
        Projections = [query, key, value];
        RegisterComponents();
    }

    public BertKernels Kernels { private get; set; } = BertKernels.Default;

    /// <param name="hidden">[B,T,H].</param>
    /// <param name="maskBias">[B,1,1,T] additive bias: 0 where attended, the dtype's minimum on padding; null when nothing
    /// is padded (libtorch can then use its fused kernels).</param>
    /// <returns>[B,T,H] context.</returns>
    public override Tensor forward(Tensor hidden, Tensor maskBias)
    {
        using var scope = NewDisposeScope();
        long b = hidden.shape[0], t = hidden.shape[1];
        var (q, k, v) = Project(hidden);
        if (!training && UsesCpuKernel(q, k, v) &&
            (maskBias is null ? Enumerable.Repeat((int)t, (int)b).ToArray() : CpuAttention.PrefixKeyLengths(maskBias)) is { } keyLengths)
        {
            return CpuAttention.RunPadded(q.view(b * t, -1), k.view(b * t, -1), v.view(b * t, -1), (int)t, keyLengths, _heads, _headDim)
                .view(b, t, -1).MoveToOuterDisposeScope();
        }
        return Sdpa(q, k, v, maskBias, b, t).MoveToOuterDisposeScope();
    }

    /// <summary>The serving pass's step: attention among each sequence's real tokens, packed as <paramref name="packing"/> says.</summary>
    /// <param name="hidden">[N,H] real tokens.</param>
    /// <returns>[N,H] context.</returns>
    internal Tensor ForwardPacked(Tensor hidden, TokenPacking packing)
    {
        using var scope = NewDisposeScope();
        var (q, k, v) = Project(hidden);
        if (UsesCpuKernel(q, k, v)) return CpuAttention.Run(q, k, v, packing.Starts, _heads, _headDim).MoveToOuterDisposeScope();
        // SDPA needs the padded [B, heads, T, d] layout: scatter the projections there and gather the context back.
        return Sdpa(packing.Unpack(q), packing.Unpack(k), packing.Unpack(v), packing.MaskBias, packing.Batch, packing.Length)
            .reshape(packing.Batch * packing.Length, -1).index_select(0, packing.Index).MoveToOuterDisposeScope();
    }

    /// <summary>Query, key and value of <paramref name="hidden"/> as this model's kernels compute them.</summary>
    internal (Tensor Q, Tensor K, Tensor V) Project(Tensor hidden)
    {
        var qkv = Projections;
        if (Kernels.Quantized?.ForFused(qkv) is { } stacked)
        {
            var projected = qkv.ProjectStacked(hidden, stacked);
            return (projected[0], projected[1], projected[2]);
        }
        return (query.Project(hidden, Kernels), key.Project(hidden, Kernels), value.Project(hidden, Kernels));
    }

    /// <summary>Query, key and value: they read the same input, so an int8 body runs them as one GEMM.</summary>
    internal IReadOnlyList<Linear> Projections { get; }

    /// <summary>libtorch's fused SDPA on [B,T,H] projections; it applies 1/sqrt(head_dim) itself, the scale BERT uses.</summary>
    private Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor? maskBias, long b, long t) =>
        nn.functional.scaled_dot_product_attention(SplitHeads(q, b, t), SplitHeads(k, b, t), SplitHeads(v, b, t),
            maskBias, training ? _dropoutProb : 0.0).transpose(1, 2).reshape(b, t, _heads * _headDim);

    /// <summary>Whether the attention core of these projections runs on <see cref="CpuAttention"/>.</summary>
    internal bool UsesCpuKernel(Tensor q, Tensor k, Tensor v) => Kernels.CpuAttention && CpuAttention.Serves(q, k, v, _headDim);

    private Tensor SplitHeads(Tensor x, long b, long t) => x.view(b, t, _heads, _headDim).transpose(1, 2);
}
