using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

namespace BertHost.Heads.Classification;

/// <summary>
/// Accuracy and F1, accumulated over evaluation batches. Single-label: prediction = argmax; F1 is the binary F1 of the
/// positive (last) label when there are 2 labels, else macro-F1 over the labels that occur in the gold labels or the
/// predictions (scikit-learn's <c>f1_score(average="macro")</c>). Multi-label: a label is predicted when its logit is
/// above 0 (probability 0.5); accuracy is the share of examples whose label set is exactly right, F1 is micro-F1 over
/// every (example, label) decision.
/// </summary>
public sealed class ClassificationMetric : IHeadMetric
{
    private readonly int _labels;
    private readonly bool _multiLabel;
    private readonly long[,] _confusion;   // [gold, predicted] (single-label)
    private long _examples, _exact, _tp, _fp, _fn;

    public ClassificationMetric(int labels, bool multiLabel)
    {
        _labels = labels;
        _multiLabel = multiLabel;
        _confusion = new long[labels, labels];
    }

    public string Primary => "accuracy";

    public void Update(Tensor logits, HeadBatch batch)
    {
        float[] values;
        using (var cpu = logits.detach().to(ScalarType.Float32, CPU).contiguous()) values = cpu.data<float>().ToArray();
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var state = batch.Items[i].State as ClassificationState ?? throw new ArgumentException($"batch item {i} has no gold label");
            var row = values.AsSpan(batch.RowStarts[i] * _labels, _labels);
            _examples++;
            if (_multiLabel)
            {
                var gold = state.Targets ?? throw new ArgumentException($"batch item {i} has no multi-label targets");
                var allRight = true;
                for (var j = 0; j < _labels; j++)
                {
                    bool p = row[j] > 0, g = gold[j] > 0.5f;
                    if (p && g) _tp++;
                    else if (p) _fp++;
                    else if (g) _fn++;
                    allRight &= p == g;
                }
                if (allRight) _exact++;
            }
            else
            {
                var gold = state.Label ?? throw new ArgumentException($"batch item {i} has no gold label");
                var best = 0;
                for (var j = 1; j < _labels; j++) if (row[j] > row[best]) best = j;
                _confusion[gold, best]++;
                if (gold == best) _exact++;
            }
        }
    }

    public IReadOnlyDictionary<string, double> Compute()
    {
        var result = new Dictionary<string, double>
        {
            ["accuracy"] = _examples == 0 ? 0 : (double)_exact / _examples,
            ["examples"] = _examples,
        };
        if (_multiLabel) result["f1"] = F1(_tp, _fp, _fn);
        else if (_labels == 2) result["f1"] = ClassF1(1);
        else
        {
            var present = Enumerable.Range(0, _labels).Where(c => Row(c) + Column(c) > 0).ToList();
            result["f1"] = present.Count == 0 ? 0 : present.Average(ClassF1);
        }
        return result;
    }

    private long Row(int c) { long s = 0; for (var j = 0; j < _labels; j++) s += _confusion[c, j]; return s; }
    private long Column(int c) { long s = 0; for (var j = 0; j < _labels; j++) s += _confusion[j, c]; return s; }

    private double ClassF1(int c)
    {
        var tp = _confusion[c, c];
        return F1(tp, Column(c) - tp, Row(c) - tp);
    }

    private static double F1(long tp, long fp, long fn) => tp == 0 ? 0 : 2.0 * tp / (2.0 * tp + fp + fn);
}
