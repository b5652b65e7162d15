using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// Updates added to some Linears' outputs during one forward pass, row range by row range (LoRA adapters, see
/// <c>Lora/LoraPass</c>): the model computes each base projection as usual and hands the result over. The model tells
/// the open updates how sequences map to projection rows when its forward starts (<see cref="UseRows"/>).
/// </summary>
public interface IProjectionUpdates
{
    /// <summary>Whether a projection of <paramref name="linear"/> has updates to add.</summary>
    bool Adapts(Linear linear);

    /// <summary>Adds the updates of <paramref name="linear"/> to <paramref name="y"/> = base(<paramref name="x"/>) ([N,out], [N,in]); returns the result.</summary>
    Tensor AddUpdates(Linear linear, Tensor x, Tensor y);

    /// <summary>Sequence b's projection rows are <paramref name="rowStarts"/>[b] .. [b+1]−1 (B+1 offsets).</summary>
    void UseRows(int[] rowStarts);
}

/// <summary>
/// The updates open on this thread. Thread-static rather than a model property because one body serves many passes
/// with different adapter mixes and the module tree is shared: the updates belong to the pass, not to the model.
/// </summary>
public static class ProjectionUpdates
{
    [ThreadStatic] private static IProjectionUpdates? _current;

    public static IProjectionUpdates? Current => _current;

    /// <summary>Makes <paramref name="updates"/> current until the returned scope is disposed (scopes close in the order they opened).</summary>
    public static IDisposable Open(IProjectionUpdates updates)
    {
        var scope = new Scope(_current, updates);
        _current = updates;
        return scope;
    }

    /// <summary>The padded layout: B sequences of T rows each.</summary>
    internal static void UsePaddedRows(long batch, long length) =>
        _current?.UseRows(Enumerable.Range(0, (int)batch + 1).Select(b => (int)(b * length)).ToArray());

    private sealed class Scope(IProjectionUpdates? previous, IProjectionUpdates opened) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            if (!ReferenceEquals(_current, opened)) throw new InvalidOperationException("projection updates must close in the order they opened");
            _current = previous;
        }
    }
}
