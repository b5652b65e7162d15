using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// The real tokens of a padded [B, T] batch packed back to back as the rows of an [N, H] matrix, sequence b in rows
/// <see cref="Starts"/>[b] .. <see cref="Starts"/>[b+1]−1: the layout of the serving pass
/// (<see cref="BertModel.ForwardSkippingPadding"/>), where every Linear, LayerNorm and GELU runs on real tokens only.
/// </summary>
internal sealed class TokenPacking : IDisposable
{
    private readonly Tensor _attentionMask;
    private int[]? _starts;

    /// <param name="attentionMask">[B,T] 1 for real tokens.</param>
    /// <param name="maskBias">[B,1,1,T] additive mask, for attention computed on the padded layout.</param>
    public TokenPacking(Tensor attentionMask, Tensor maskBias)
    {
        _attentionMask = attentionMask;
        (Batch, Length) = (attentionMask.shape[0], attentionMask.shape[1]);
        Index = attentionMask.reshape(-1).nonzero().squeeze(1);
        MaskBias = maskBias;
    }

    public long Batch { get; }
    public long Length { get; }

    /// <summary>Flat [B·T] positions of the real tokens, in order.</summary>
    public Tensor Index { get; }

    public Tensor MaskBias { get; }

    /// <summary>B+1 row offsets of the sequences in the packed rows.</summary>
    public int[] Starts => _starts ??= SequenceStarts(_attentionMask);

    /// <summary>[B,T,H] → [N,H]: the real tokens' rows.</summary>
    public Tensor Pack(Tensor padded) => padded.reshape(Batch * Length, padded.shape[^1]).index_select(0, Index);

    /// <summary>[N,H] → [B,T,H] with zero rows at padded positions.</summary>
    public Tensor Unpack(Tensor packed) =>
        zeros([Batch * Length, packed.shape[^1]], packed.dtype, packed.device).index_copy_(0, Index, packed).view(Batch, Length, -1);

    private static int[] SequenceStarts(Tensor attentionMask)
    {
        using var counts = attentionMask.sum(1, type: ScalarType.Int64).cpu();
        var lengths = counts.data<long>().ToArray();
        var starts = new int[lengths.Length + 1];
        for (var i = 0; i < lengths.Length; i++) starts[i + 1] = starts[i] + (int)lengths[i];
        return starts;
    }

    public void Dispose() => Index.Dispose();
}
