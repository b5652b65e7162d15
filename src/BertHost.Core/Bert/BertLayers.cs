using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// The Linear modules of the Bert modules. Inside <see cref="Uninitialized"/> their weights are allocated without
/// values: for a model whose every parameter a checkpoint is about to overwrite (the checkpoint loader refuses one that
/// lacks any), the constructors' random draws are never read (MiniLM's Linears hold 11 million weights, BERT-base's 85
/// million). Outside it they initialise as libtorch's constructor does. Embeddings keep theirs: TorchSharp's
/// <c>Embedding_from_pretrained</c> registers a parameter that is not the weight its forward reads (loading into the
/// parameter left the lookups reading the uninitialised tensor).
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

    private sealed class Restore(bool previous) : IDisposable
    {
        public void Dispose() => _uninitialized = previous;
    }
}
