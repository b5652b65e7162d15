using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// Inference through the encoder with padding removed: every Linear, LayerNorm and GELU runs on the real tokens only
/// (a [N, H] matrix of the batch's N unpadded tokens), and only the attention core sees the padded [B, heads, T, d]
/// layout it needs. On a length mix this skips the padded tokens' share of the feed-forward and projection work — most
/// of a pass — while real tokens get exactly the values of the padded computation (padding is masked out of
/// attention either way). Outputs are scattered back to [B, T, H] with zeros at padded positions.
/// </summary>
internal sealed class PackedEncoder(BertModel model)
{
    private readonly int _heads = model.Config.NumAttentionHeads;
    private readonly int _headDim = model.Config.HeadDim;
    private readonly int _hidden = model.Config.HiddenSize;

    /// <param name="embedded">[B,T,H] embeddings output.</param>
    /// <param name="maskBias">[B,1,1,T] additive mask.</param>
    /// <param name="attentionMask">[B,T] 1 for real tokens.</param>
    /// <param name="allHiddenStates">When given, receives the embeddings and every layer's output as [B,T,H].</param>
    /// <returns>The last layer's output, [B,T,H].</returns>
    public Tensor Run(Tensor embedded, Tensor maskBias, Tensor attentionMask, List<Tensor>? allHiddenStates)
    {
        long b = embedded.shape[0], t = embedded.shape[1];
        using var index = attentionMask.reshape(-1).nonzero().squeeze(1);
        var x = embedded.reshape(b * t, _hidden).index_select(0, index);
        if (allHiddenStates is not null) allHiddenStates.Add(embedded.alias());
        foreach (var layer in model.encoder.layer)
        {
            using var scope = NewDisposeScope();
            var a = layer.attention.@self;
            var q = Pad(a.query.Project(x), index, b, t);
            var k = Pad(a.key.Project(x), index, b, t);
            var v = Pad(a.value.Project(x), index, b, t);
            var context = nn.functional.scaled_dot_product_attention(q, k, v, maskBias)
                .transpose(1, 2).reshape(b * t, _hidden).index_select(0, index);
            var attended = layer.attention.output.call(context, x);
            var next = layer.output.call(layer.intermediate.call(attended), attended).MoveToOuterDisposeScope();
            x.Dispose();
            x = next;
            allHiddenStates?.Add(Scatter(x, index, b, t).MoveToOuterDisposeScope());
        }
        if (allHiddenStates is not null)
        {
            x.Dispose();
            return allHiddenStates[^1].alias();
        }
        using (x) return Scatter(x, index, b, t);
    }

    /// <summary>[N,H] real tokens → [B, heads, T, d] with zero rows at padding (masked out of attention anyway).</summary>
    private Tensor Pad(Tensor packed, Tensor index, long b, long t) =>
        Scatter(packed, index, b, t).view(b, t, _heads, _headDim).transpose(1, 2);

    private Tensor Scatter(Tensor packed, Tensor index, long b, long t) =>
        zeros([b * t, _hidden], packed.dtype, packed.device).index_copy_(0, index, packed).view(b, t, _hidden);
}
