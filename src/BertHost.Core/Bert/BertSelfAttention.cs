using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>Multi-head scaled dot-product self-attention (HF <c>BertSelfAttention</c>).</summary>
public sealed class BertSelfAttention : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly Linear query;
    public readonly Linear key;
    public readonly Linear value;
    private readonly int _heads;
    private readonly int _headDim;
    private readonly double _dropoutProb;

    public BertSelfAttention(BertConfig config) : base(nameof(BertSelfAttention))
    {
        query = nn.Linear(config.HiddenSize, config.HiddenSize);
        key = nn.Linear(config.HiddenSize, config.HiddenSize);
        value = nn.Linear(config.HiddenSize, config.HiddenSize);
        _heads = config.NumAttentionHeads;
        _headDim = config.HeadDim;
        _dropoutProb = config.AttentionProbsDropoutProb;
        RegisterComponents();
    }

    /// <param name="hidden">[B,T,H].</param>
    /// <param name="maskBias">[B,1,1,T] additive bias: 0 where attended, the dtype's minimum on padding; null when nothing
    /// is padded (libtorch can then use its fused kernels).</param>
    /// <returns>[B,T,H] context.</returns>
    public override Tensor forward(Tensor hidden, Tensor maskBias)
    {
        using var scope = NewDisposeScope();
        long b = hidden.shape[0], t = hidden.shape[1];
        var q = query.Project(hidden);
        var k = key.Project(hidden);
        var v = value.Project(hidden);
        if (!training && UsesCpuKernel(q, k, v) &&
            (maskBias is null ? Enumerable.Repeat((int)t, (int)b).ToArray() : CpuAttention.PrefixKeyLengths(maskBias)) is { } keyLengths)
        {
            return CpuAttention.RunPadded(q.view(b * t, -1), k.view(b * t, -1), v.view(b * t, -1), (int)t, keyLengths, _heads, _headDim)
                .view(b, t, -1).MoveToOuterDisposeScope();
        }
        // libtorch's fused SDPA applies 1/sqrt(head_dim) itself, the scale BERT uses.
        var context = nn.functional.scaled_dot_product_attention(SplitHeads(q, b, t), SplitHeads(k, b, t), SplitHeads(v, b, t),
            maskBias, training ? _dropoutProb : 0.0);
        return context.transpose(1, 2).reshape(b, t, _heads * _headDim).MoveToOuterDisposeScope();
    }

    /// <summary>Whether inference passes may run the attention core with <see cref="CpuAttention"/> (see <see cref="BertModel.UseCpuAttentionKernel"/>).</summary>
    internal bool CpuKernel { get; set; } = true;

    /// <summary>Whether the attention core of these projections runs on <see cref="CpuAttention"/>.</summary>
    internal bool UsesCpuKernel(Tensor q, Tensor k, Tensor v) => CpuKernel && CpuAttention.Serves(q, k, v, _headDim);

    private Tensor SplitHeads(Tensor x, long b, long t) => x.view(b, t, _heads, _headDim).transpose(1, 2);
}
