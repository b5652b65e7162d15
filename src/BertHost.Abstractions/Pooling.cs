using static TorchSharp.torch;

namespace BertHost.Abstractions;

/// <summary>How a sequence of hidden states becomes one vector.</summary>
public enum PoolingMode
{
    /// <summary>No pooling: one vector per token.</summary>
    None,
    /// <summary>The first token's ([CLS]) last hidden state.</summary>
    Cls,
    /// <summary>Mean of the last hidden states over real (unmasked) tokens, as sentence-transformers does.</summary>
    Mean,
    /// <summary>Element-wise max over real tokens.</summary>
    Max,
    /// <summary>The pooler output (dense + tanh over [CLS]), transformers' default sentence vector.</summary>
    Pooler,
    /// <summary>
    /// A learned, masked-softmax weighting of the tokens (<see cref="Heads.AttentionPooling"/>): a head option, since
    /// it has weights; <see cref="Pooling.Pool(BodyOutput, PoolingMode, int)"/> does not compute it.
    /// </summary>
    Attention,
}

public static class Pooling
{
    public static PoolingMode Parse(string value) => value.ToLowerInvariant() switch
    {
        "none" => PoolingMode.None,
        "cls" => PoolingMode.Cls,
        "mean" => PoolingMode.Mean,
        "max" => PoolingMode.Max,
        "pooler" => PoolingMode.Pooler,
        _ => throw new ArgumentException($"pooling '{value}' is not one of none, cls, mean, max, pooler"),
    };

    /// <summary>
    /// [B,H] sentence vectors from a body pass (for <see cref="PoolingMode.None"/>, use the hidden states directly).
    /// <paramref name="layer"/> picks the hidden state to pool, counted like Python (-1 = last layer; others need the
    /// pass to have returned every layer); the pooler output is always the last layer's.
    /// </summary>
    public static Tensor Pool(BodyOutput output, PoolingMode mode, int layer = -1) => mode == PoolingMode.Pooler
        ? output.PooledOutput.clone()
        : Pool(layer == -1 ? output.LastHiddenState : output.HiddenState(layer), output.AttentionMask, mode, output);

    /// <summary>Pools any [B,T,H] hidden states (e.g. a chosen layer) under a [B,T] attention mask.</summary>
    public static Tensor Pool(Tensor hidden, Tensor attentionMask, PoolingMode mode, BodyOutput? output = null)
    {
        using var scope = NewDisposeScope();
        Tensor result = mode switch
        {
            PoolingMode.Cls => hidden.select(1, 0).clone(),
            PoolingMode.Pooler => (output ?? throw new ArgumentException("pooler pooling needs the body output")).PooledOutput.clone(),
            PoolingMode.Mean => MeanPool(hidden, attentionMask),
            PoolingMode.Max => MaxPool(hidden, attentionMask),
            PoolingMode.Attention => throw new ArgumentException("attention pooling has learned weights: it is computed by the head's AttentionPooling module"),
            _ => throw new ArgumentException($"pooling {mode} does not give one vector per sequence"),
        };
        return result.MoveToOuterDisposeScope();
    }

    private static Tensor MeanPool(Tensor hidden, Tensor attentionMask)
    {
        var mask = attentionMask.to(hidden.dtype).unsqueeze(-1);
        var summed = hidden.mul(mask).sum(1);
        var counts = mask.sum(1).clamp_min(1.0);
        return summed.div_(counts);
    }

    private static Tensor MaxPool(Tensor hidden, Tensor attentionMask)
    {
        var padding = attentionMask.eq(0).unsqueeze(-1);
        return hidden.masked_fill(padding, finfo(hidden.dtype).min).amax([1]);
    }
}
