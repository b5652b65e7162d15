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
        // Real tokens are packed row by row, so each sequence is a contiguous run of x's rows.
        int[]? starts = null;
        foreach (var layer in model.encoder.layer)
        {
            using var scope = NewDisposeScope();
            var a = layer.attention.@self;
            var (q, k, v) = (a.query.Project(x), a.key.Project(x), a.value.Project(x));
            Tensor context;
            if (a.UsesCpuKernel(q, k, v))
            {
                starts ??= SequenceStarts(attentionMask);
                context = CpuAttention.Run(q, k, v, starts, _heads, _headDim);
            }
            else
            {
                context = PaddedAttention(q, k, v, maskBias, index, b, t);
            }
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

    /// <summary>libtorch's SDPA on the padded layout, gathered back to the real tokens' rows.</summary>
    private Tensor PaddedAttention(Tensor q, Tensor k, Tensor v, Tensor maskBias, Tensor index, long b, long t) =>
        nn.functional.scaled_dot_product_attention(Pad(q, index, b, t), Pad(k, index, b, t), Pad(v, index, b, t), maskBias)
            .transpose(1, 2).reshape(b * t, _hidden).index_select(0, index);

    private static int[] SequenceStarts(Tensor attentionMask)
    {
        using var counts = attentionMask.sum(1, type: ScalarType.Int64).cpu();
        var lengths = counts.data<long>().ToArray();
        var starts = new int[lengths.Length + 1];
        for (var i = 0; i < lengths.Length; i++) starts[i + 1] = starts[i] + (int)lengths[i];
        return starts;
    }

    /// <summary>[N,H] real tokens → [B, heads, T, d] with zero rows at padding (masked out of attention anyway).</summary>
    private Tensor Pad(Tensor packed, Tensor index, long b, long t) =>
        Scatter(packed, index, b, t).view(b, t, _heads, _headDim).transpose(1, 2);

    private Tensor Scatter(Tensor packed, Tensor index, long b, long t) =>
        zeros([b * t, _hidden], packed.dtype, packed.device).index_copy_(0, index, packed).view(b, t, _hidden);
}
