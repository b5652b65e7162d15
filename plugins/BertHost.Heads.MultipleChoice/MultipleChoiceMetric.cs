using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

namespace BertHost.Heads.MultipleChoice;

/// <summary>Choice accuracy, accumulated over evaluation batches: an item is right when its highest-scoring choice is the gold one.</summary>
public sealed class MultipleChoiceMetric : IHeadMetric
{
    private long _examples, _correct;

    public string Primary => "accuracy";

    public void Update(Tensor logits, HeadBatch batch)
    {
        var values = MultipleChoiceHead.RowScores(logits, batch);
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var state = batch.Items[i].State as MultipleChoiceState ?? throw new ArgumentException($"batch item {i} has no gold label");
            var gold = state.Label ?? throw new ArgumentException($"batch item {i} ({state.Source}) has no gold label");
            var best = HeadMath.ArgMax(values.AsSpan(batch.RowStarts[i], batch.RowCountOf(i)));
            _examples++;
            if (best == gold) _correct++;
        }
    }

    public IReadOnlyDictionary<string, double> Compute() => new Dictionary<string, double>
    {
        ["accuracy"] = _examples == 0 ? 0 : (double)_correct / _examples,
        ["examples"] = _examples,
    };
}
