using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

namespace BertHost.Core.Training;

/// <summary>
/// Body outputs of a fixed set of examples, computed once (head mode: the body does not change) and kept on the CPU per
/// sequence: the last hidden state trimmed to the sequence's length, the pooled output when the body has a pooler, and
/// the hidden layers the head asks for. <see cref="Assemble"/> pads them back into a <see cref="BodyOutput"/>.
/// </summary>
internal sealed class FeatureCache : IDisposable
{
    private sealed record Row(Tensor Last, Tensor? Pooled, Tensor[]? Layers);

    private readonly Dictionary<HeadFeatures, Row[]> _rows = new(ReferenceEqualityComparer.Instance);
    private readonly int[] _layers;
    private readonly int _hiddenStateCount;

    public FeatureCache(BodyRequirements requirements, int numHiddenLayers)
    {
        _hiddenStateCount = numHiddenLayers + 1;
        _layers = (requirements.HiddenLayers ?? [])
            .Select(l => l < 0 ? _hiddenStateCount + l : l).Where(l => l != _hiddenStateCount - 1).Distinct().ToArray();
        NeedsHiddenStates = requirements.NeedsHiddenStates;
    }

    public bool NeedsHiddenStates { get; }

    public bool Contains(HeadFeatures item) => _rows.ContainsKey(item);

    public int Count => _rows.Count;

    /// <summary>Stores the rows of <paramref name="items"/> from the body output of exactly their sequences.</summary>
    public void Add(IReadOnlyList<HeadFeatures> items, BodyOutput output)
    {
        var r = 0;
        foreach (var item in items)
        {
            var rows = new Row[item.Sequences.Count];
            for (var s = 0; s < rows.Length; s++, r++)
            {
                var len = item.Sequences[s].Length;
                Tensor Take(Tensor hidden) => hidden[r, TensorIndex.Slice(0, len)].to(CPU).clone().DetachFromDisposeScope();
                rows[s] = new Row(
                    Take(output.LastHiddenState),
                    output.HasPooledOutput ? output.PooledOutput[r].to(CPU).clone().DetachFromDisposeScope() : null,
                    _layers.Length == 0 ? null : _layers.Select(l => Take(output.HiddenState(l))).ToArray());
            }
            _rows[item] = rows;
        }
    }

    /// <summary>A padded body output for <paramref name="items"/> (their rows in order), on <paramref name="device"/>.</summary>
    public BodyOutput Assemble(IReadOnlyList<HeadFeatures> items, Device device)
    {
        var rows = items.SelectMany(i => _rows[i]).ToList();
        var lengths = rows.Select(r => r.Last.shape[0]).ToArray();
        var t = lengths.Max();
        Tensor Pad(IEnumerable<Tensor> xs) => nn.utils.rnn.pad_sequence(xs, batch_first: true).to(device);
        var last = Pad(rows.Select(r => r.Last));
        var mask = new long[rows.Count * t];
        for (var i = 0; i < rows.Count; i++) Array.Fill(mask, 1L, (int)(i * t), (int)lengths[i]);
        var attention = tensor(mask, [rows.Count, t], ScalarType.Int64, device);
        var pooled = rows[0].Pooled is null ? null : stack(rows.Select(r => r.Pooled!)).to(device);
        List<Tensor>? states = null;
        if (NeedsHiddenStates)
        {
            // Layers the head did not ask for are never read; they alias the last hidden state so nothing is computed
            // or disposed twice for them.
            states = Enumerable.Repeat(last, _hiddenStateCount).ToList();
            for (var k = 0; k < _layers.Length; k++) states[_layers[k]] = Pad(rows.Select(r => r.Layers![k]));
        }
        return new BodyOutput(last, pooled, attention, states);
    }

    public void Dispose()
    {
        foreach (var rows in _rows.Values)
        foreach (var row in rows)
        {
            row.Last.Dispose();
            row.Pooled?.Dispose();
            if (row.Layers is not null) foreach (var l in row.Layers) l.Dispose();
        }
        _rows.Clear();
    }
}
