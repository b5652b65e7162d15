using BertHost.Abstractions;
using static TorchSharp.torch;

namespace BertHost.Heads.Classification;

/// <summary>
/// One vector per row of a body pass (the same maths as the host's pooling helper; a plugin references only the
/// contract, so it carries its own few lines).
/// </summary>
public static class HeadPooling
{
    /// <summary>[N,H] from the body output; <paramref name="layer"/> -1 = last hidden state.</summary>
    public static Tensor Pool(BodyOutput body, PoolingMode mode, int layer)
    {
        if (mode == PoolingMode.Pooler) return body.PooledOutput.alias();
        var hidden = layer == -1 ? body.LastHiddenState : body.HiddenState(layer);
        return Pool(hidden, body.AttentionMask, mode);
    }

    public static Tensor Pool(Tensor hidden, Tensor attentionMask, PoolingMode mode)
    {
        using var scope = NewDisposeScope();
        Tensor result;
        switch (mode)
        {
            case PoolingMode.Cls:
                result = hidden.select(1, 0);
                break;
            case PoolingMode.Mean:
            {
                var mask = attentionMask.to(hidden.dtype).unsqueeze(-1);
                result = hidden.mul(mask).sum(1).div_(mask.sum(1).clamp_min(1.0));
                break;
            }
            case PoolingMode.Max:
            {
                var padding = attentionMask.eq(0).unsqueeze(-1);
                result = hidden.masked_fill(padding, finfo(hidden.dtype).min).amax([1]);
                break;
            }
            default:
                throw new ArgumentException($"pooling {mode} needs the body output, not hidden states");
        }
        return result.MoveToOuterDisposeScope();
    }
}
