using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

namespace BertHost.Heads.TokenClassification;

/// <summary>
/// Entity-level precision, recall and F1 with seqeval's default-mode semantics (IOB2 and IOB1 read alike): an entity
/// counts as found only when its type and its first and last word are exactly right. Overall scores are micro-averaged
/// (<c>precision</c>, <c>recall</c>, <c>f1</c>); per type <c>{TYPE}.precision</c>, <c>{TYPE}.recall</c>, <c>{TYPE}.f1</c>,
/// <c>{TYPE}.support</c>; <c>accuracy</c> is word-level tag accuracy. A word's prediction is the label of its first
/// sub-token (the position it was trained on).
/// </summary>
public sealed class EntityMetric : IHeadMetric
{
    private readonly IReadOnlyList<string> _labels;
    private readonly Dictionary<string, (long Tp, long Predicted, long Gold)> _byType = new(StringComparer.Ordinal);
    private long _words, _correctWords, _sentences;

    public EntityMetric(IReadOnlyList<string> labels) => _labels = labels;

    public string Primary => "f1";

    public void Update(Tensor logits, HeadBatch batch)
    {
        int rows = (int)logits.shape[0], length = (int)logits.shape[1], n = (int)logits.shape[2];
        if (rows != batch.RowCount) throw new ArgumentException($"logits have {rows} rows, the batch has {batch.RowCount}");
        float[] values;
        using (var cpu = logits.detach().to(ScalarType.Float32, CPU).contiguous()) values = cpu.data<float>().ToArray();
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var item = batch.Items[i];
            var state = item.State as TokenClassificationState;
            if (state?.TokenLabels is not { } tokenLabels || state.WordTags is not { } wordTags)
                throw new ArgumentException($"batch item {i} has no gold tags");
            var predicted = Enumerable.Repeat(-1, wordTags.Length).ToArray();
            for (var w = 0; w < item.Sequences.Count; w++)
            {
                var seq = item.Sequences[w];
                var row = batch.RowStarts[i] + w;
                for (var p = 0; p < seq.Length; p++)
                {
                    if (tokenLabels[w][p] < 0 || seq.WordIds[p] is not { } word) continue;
                    var best = 0;
                    var at = (row * length + p) * n;
                    for (var j = 1; j < n; j++) if (values[at + j] > values[at + best]) best = j;
                    predicted[word] = best;
                }
            }
            Add(wordTags.Select(t => _labels[t]).ToList(), predicted.Select(t => t < 0 ? "O" : _labels[t]).ToList());
        }
    }

    /// <summary>Adds one sentence's gold and predicted tags.</summary>
    public void Add(IReadOnlyList<string> gold, IReadOnlyList<string> predicted)
    {
        if (gold.Count != predicted.Count) throw new ArgumentException($"{gold.Count} gold tags but {predicted.Count} predicted");
        _sentences++;
        _words += gold.Count;
        for (var k = 0; k < gold.Count; k++) if (gold[k] == predicted[k]) _correctWords++;
        var g = Seqeval.Entities(gold).ToHashSet();
        var p = Seqeval.Entities(predicted).ToHashSet();
        foreach (var e in g) Bump(e.Type, tp: p.Contains(e) ? 1 : 0, predicted: 0, gold: 1);
        foreach (var e in p) Bump(e.Type, tp: 0, predicted: 1, gold: 0);
    }

    private void Bump(string type, int tp, int predicted, int gold)
    {
        var c = _byType.GetValueOrDefault(type);
        _byType[type] = (c.Tp + tp, c.Predicted + predicted, c.Gold + gold);
    }

    public IReadOnlyDictionary<string, double> Compute()
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        long tp = 0, predicted = 0, gold = 0;
        foreach (var (type, c) in _byType.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var (pr, rc, f1) = Scores(c.Tp, c.Predicted, c.Gold);
            result[$"{type}.precision"] = pr;
            result[$"{type}.recall"] = rc;
            result[$"{type}.f1"] = f1;
            result[$"{type}.support"] = c.Gold;
            tp += c.Tp;
            predicted += c.Predicted;
            gold += c.Gold;
        }
        var (p, r, f) = Scores(tp, predicted, gold);
        result["precision"] = p;
        result["recall"] = r;
        result["f1"] = f;
        result["accuracy"] = _words == 0 ? 0 : (double)_correctWords / _words;
        result["examples"] = _sentences;
        return result;
    }

    /// <summary>seqeval: precision = tp / predicted, recall = tp / gold (0 when the denominator is 0), F1 their harmonic mean (0 when both are 0).</summary>
    private static (double Precision, double Recall, double F1) Scores(long tp, long predicted, long gold)
    {
        var p = predicted == 0 ? 0 : (double)tp / predicted;
        var r = gold == 0 ? 0 : (double)tp / gold;
        return (p, r, p + r == 0 ? 0 : 2 * p * r / (p + r));
    }
}
