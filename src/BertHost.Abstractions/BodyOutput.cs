using static TorchSharp.torch;

namespace BertHost.Abstractions;

/// <summary>
/// What one body pass gives the heads of a batch. The body computes it once; every head reads it. Disposing it
/// disposes every tensor it holds.
/// </summary>
public sealed class BodyOutput : IDisposable
{
    private readonly Tensor? _pooledOutput;
    private bool _disposed;

    public BodyOutput(Tensor lastHiddenState, Tensor? pooledOutput, Tensor attentionMask, IReadOnlyList<Tensor>? hiddenStates = null)
    {
        LastHiddenState = lastHiddenState;
        _pooledOutput = pooledOutput;
        AttentionMask = attentionMask;
        HiddenStates = hiddenStates;
    }

    /// <summary>[B,T,H] output of the last encoder layer.</summary>
    public Tensor LastHiddenState { get; }

    /// <summary>[B,T] 1 for real tokens, 0 for padding (int64).</summary>
    public Tensor AttentionMask { get; }

    /// <summary>
    /// When requested: the embedding output followed by every layer's output ([B,T,H] each, num_layers + 1 in all,
    /// as transformers' <c>output_hidden_states</c>); the last element is <see cref="LastHiddenState"/>.
    /// </summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; }

    public bool HasPooledOutput => _pooledOutput is not null;

    /// <summary>[B,H] pooler output (dense + tanh over the first token).</summary>
    public Tensor PooledOutput => _pooledOutput ?? throw new InvalidOperationException(
        "this body has no pooler (its checkpoint has no pooler.dense weights); use cls or mean pooling instead");

    /// <summary>Hidden state <paramref name="index"/> counted like Python: 0 = embeddings, -1 = last layer.</summary>
    public Tensor HiddenState(int index)
    {
        if (HiddenStates is null)
            throw new InvalidOperationException("hidden states of every layer were not requested for this pass");
        var i = index < 0 ? HiddenStates.Count + index : index;
        if (i < 0 || i >= HiddenStates.Count)
            throw new ArgumentOutOfRangeException(nameof(index), $"layer {index} does not exist: the body has {HiddenStates.Count} hidden states (embeddings + {HiddenStates.Count - 1} layers)");
        return HiddenStates[i];
    }

    /// <summary>Moves every tensor of this output out of the current dispose scope, so the caller owns them.</summary>
    public void MoveToOuterDisposeScope()
    {
        foreach (var t in Tensors()) t.MoveToOuterDisposeScope();
    }

    private IEnumerable<Tensor> Tensors()
    {
        yield return LastHiddenState;
        yield return AttentionMask;
        if (_pooledOutput is not null) yield return _pooledOutput;
        if (HiddenStates is null) yield break;
        foreach (var t in HiddenStates)
            if (!ReferenceEquals(t, LastHiddenState)) yield return t;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in Tensors()) t.Dispose();
    }
}
