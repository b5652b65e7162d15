using System.Runtime.CompilerServices;
using BertHost.Core.Backends;
using BertHost.Core.Bert;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Lora;

/// <summary>
/// Which adapter applies to which sequences of the batch: sequences <see cref="First"/> .. First+<see cref="Count"/>−1
/// (a <see cref="Count"/> of −1: every sequence of the batch).
/// </summary>
public readonly record struct LoraSegment(LoraAdapter Adapter, int First, int Count)
{
    /// <summary>The adapter on every sequence of the batch (training, a merged-body check).</summary>
    public static LoraSegment All(LoraAdapter adapter) => new(adapter, 0, -1);
}

/// <summary>
/// The adapters of the body passes run on this thread while it is open (<see cref="Enter"/> ... Dispose). The body's
/// projections (<see cref="LinearExtensions"/>) first compute the base product exactly as without adapters — libtorch,
/// oneDNN on prepacked weights or int8, whatever the body's kernels are — and then, for every targeted Linear, add each
/// adapter's low-rank update to its own rows only: the segment's rows are a contiguous range (the serving planner puts
/// each adapter's rows together), so the gather is a view, two small GEMMs (x·Aᵀ, then ·Bᵀ·scale) give the update and the
/// scatter is an in-place add into those rows. Rows of no segment (plain heads) get the base product alone.
/// </summary>
/// <remarks>
/// Open on the thread through <see cref="ProjectionUpdates"/> (the model's side of the contract, so the model does not
/// know LoRA). The model tells the open pass how sequences map to projection rows when its forward starts
/// (<see cref="UseRows"/>): T rows each in the padded layout, each sequence's real tokens in the packed serving layout.
/// </remarks>
public sealed class LoraPass : IProjectionUpdates, IDisposable
{

    private static readonly ConditionalWeakTable<BertModel, Dictionary<string, Linear>> LinearsByModel = new();

    private readonly IDisposable _opened;
    private readonly BertModel _model;
    private readonly Dictionary<Linear, List<(LoraPair Pair, LoraSettings Settings, int First, int Count)>> _byLinear = new(ReferenceEqualityComparer.Instance);
    private int[]? _rowStarts;
    private bool _disposed;

    private LoraPass(BertModel model, IReadOnlyList<LoraSegment> segments)
    {
        _model = model;
        var linears = LinearsByModel.GetValue(model, m => m.named_modules().Where(x => x.module is Linear)
            .ToDictionary(x => x.name, x => (Linear)x.module));
        foreach (var segment in segments)
        {
            if (segment.Count == 0) continue;
            foreach (var (name, pair) in segment.Adapter.Pairs)
            {
                if (!linears.TryGetValue(name, out var linear))
                    throw new ArgumentException($"the adapter targets '{name}', which is not a Linear of this body");
                if (!_byLinear.TryGetValue(linear, out var list)) _byLinear[linear] = list = [];
                list.Add((pair, segment.Adapter.Settings, segment.First, segment.Count));
            }
        }
        _opened = ProjectionUpdates.Open(this);
    }

    /// <summary>Opens a pass whose projections of <paramref name="model"/> add <paramref name="segments"/>' updates; dispose to close it.</summary>
    public static LoraPass Enter(BertModel model, IReadOnlyList<LoraSegment> segments) => new(model, segments);

    public void UseRows(int[] rowStarts) => _rowStarts = rowStarts;

    public bool Adapts(Linear linear) => _byLinear.ContainsKey(linear);

    /// <summary>
    /// Adds the updates of <paramref name="linear"/>'s adapters to <paramref name="y"/> = base(<paramref name="x"/>),
    /// [N,out] and [N,in]; returns the result (y itself, updated in place, unless one segment covers every row: then a
    /// new tensor, and y is disposed).
    /// </summary>
    public Tensor AddUpdates(Linear linear, Tensor x, Tensor y)
    {
        var starts = _rowStarts ?? throw new InvalidOperationException("a LoRA pass ran a projection before the model said how its rows are laid out");
        var rows = x.shape[0];
        if (starts[^1] != rows)
            throw new InvalidOperationException($"a LoRA pass laid out {starts[^1]} rows but a projection got {rows}");
        var training = _model.training;
        var entries = _byLinear[linear];
        if (!training && _model.Kernels.LowRankRows && LowRankRows.Serves(x, y, entries.SelectMany(e => new Tensor[] { e.Pair.A, e.Pair.B })))
        {
            foreach (var (pair, settings, first, count) in entries)
            {
                var (r0, r1) = RowRange(starts, first, count);
                if (r1 > r0) LowRankRows.Add(x, y, pair.A, pair.B, (float)settings.Scale, r0, r1);
            }
            return y;
        }
        foreach (var (pair, settings, first, count) in entries)
        {
            var (r0, r1) = RowRange(starts, first, count);
            long n = r1 - r0;
            if (n == 0) continue;
            using var scope = NewDisposeScope();
            var xs = n == rows ? x : x.narrow(0, r0, n);
            if (xs.dtype != pair.A.dtype) xs = xs.to(pair.A.dtype);
            if (training && settings.Dropout > 0) xs = nn.functional.dropout(xs, settings.Dropout, training: true);
            var delta = xs.matmul(pair.A.t()).matmul(pair.B.t()).mul(settings.Scale);
            if (delta.dtype != y.dtype) delta = delta.to(y.dtype);
            if (n == rows)
            {
                // Out of place: with gradients this keeps the base product (which autograd may not own) untouched.
                var sum = y.add(delta).MoveToOuterDisposeScope();
                y.Dispose();
                y = sum;
            }
            else
            {
                y.narrow(0, r0, n).add_(delta);
            }
        }
        return y;
    }

    /// <summary>The projection rows of sequences <paramref name="first"/> .. first+<paramref name="count"/>−1 (count −1: all), clipped to the batch; empty when none.</summary>
    private static (int First, int End) RowRange(int[] starts, int first, int count)
    {
        var end = count < 0 ? starts.Length - 1 : Math.Min(first + count, starts.Length - 1);
        return first < end ? (starts[first], starts[end]) : (0, 0);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _opened.Dispose();
    }
}
