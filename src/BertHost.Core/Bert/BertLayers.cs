using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// The Linear and Embedding modules of the Bert modules. Inside <see cref="Uninitialized"/> their weights are allocated
/// without values: for a model whose every parameter a checkpoint is about to overwrite (the checkpoint loader refuses
/// one that lacks any), the constructors' random draws are never read (MiniLM's Linears hold 11 million weights and its
/// word embeddings 12 million, BERT-base's 85 and 23 million; drawing MiniLM's embeddings took ~40 ms of its load).
/// Outside it they initialise as libtorch's constructors do. An Embedding is built with a one-row table whose weight is
/// then replaced (<c>set_weight</c> swaps the tensor its forward reads and its registered parameter alike), not with
/// TorchSharp's <c>Embedding_from_pretrained</c>: that registers a parameter that is not the weight its forward reads
/// (loading into the parameter left the lookups reading the uninitialised tensor).
/// </summary>
internal static class BertLayers
{
    [ThreadStatic] private static bool _uninitialized;

    /// <summary>Modules built on this thread until disposal get uninitialised weights.</summary>
    public static IDisposable Uninitialized()
    {
        var previous = _uninitialized;
        _uninitialized = true;
        return new Restore(previous);
    }

    public static Linear Linear(long inputs, long outputs) => _uninitialized
        ? nn.Linear(new Parameter(empty(outputs, inputs)), new Parameter(empty(outputs)))
        : nn.Linear(inputs, outputs);

    /// <param name="paddingIdx">The row whose gradient stays zero in training (HF's <c>padding_idx</c>).</param>
    public static Embedding Embedding(long count, long dimensions, long? paddingIdx = null)
    {
        // A padding row outside the table: libtorch's constructor refuses it as it always did.
        if (!_uninitialized || paddingIdx >= count) return nn.Embedding(count, dimensions, padding_idx: paddingIdx);
        // libtorch checks padding_idx against the table it builds: the smallest table that holds it.
        var embedding = nn.Embedding(paddingIdx is { } row && row >= 0 ? row + 1 : 1, dimensions, padding_idx: paddingIdx);
        embedding.weight = new Parameter(empty(count, dimensions));
        return embedding;
    }

    private sealed class Restore(bool previous) : IDisposable
    {
        public void Dispose() => _uninitialized = previous;
    }
}
