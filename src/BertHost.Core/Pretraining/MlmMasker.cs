namespace BertHost.Core.Pretraining;

/// <summary>
/// BERT's masked-LM corruption, drawn afresh every time a sequence is used (dynamic masking): 15 % of the real,
/// non-special tokens are chosen (rounded, at least 1), of which 80 % become [MASK], 10 % a random token and 10 % stay.
/// With whole-word masking the choice is made over words (a token and the <c>##</c> pieces that follow it), as in
/// Google's <c>create_pretraining_data.py</c>: words are taken in random order while they fit in the budget.
/// </summary>
public sealed class MlmMasker
{
    /// <summary>The label of positions that are not predicted (PyTorch's cross-entropy ignore index).</summary>
    public const int IgnoreIndex = -100;

    private readonly bool[] _special;
    private readonly bool[] _continuation;
    private readonly int[] _replacements;

    /// <param name="vocabulary">The tokens by id (for <c>##</c> continuation pieces and the random replacements).</param>
    /// <param name="specialTokenIds">Ids never chosen nor used as replacements ([CLS], [SEP], [PAD], [MASK], [UNK]).</param>
    public MlmMasker(IReadOnlyList<string> vocabulary, int maskTokenId, IEnumerable<int> specialTokenIds,
        double probability = 0.15, bool wholeWord = false)
    {
        if (probability is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(probability), probability, "mask probability must be between 0 and 1");
        MaskTokenId = maskTokenId;
        Probability = probability;
        WholeWord = wholeWord;
        _special = new bool[vocabulary.Count];
        foreach (var id in specialTokenIds) _special[id] = true;
        _special[maskTokenId] = true;
        _continuation = vocabulary.Select(t => t.StartsWith("##", StringComparison.Ordinal)).ToArray();
        _replacements = Enumerable.Range(0, vocabulary.Count).Where(i => !_special[i] && !IsUnused(vocabulary[i])).ToArray();
    }

    public int MaskTokenId { get; }
    public double Probability { get; }
    public bool WholeWord { get; }

    /// <summary>
    /// Masks <paramref name="ids"/>[0..<paramref name="length"/>) into <paramref name="input"/> and
    /// <paramref name="labels"/> (the original id where a prediction is due, else <see cref="IgnoreIndex"/>).
    /// Positions from <paramref name="length"/> on are copied and ignored. Returns the number of chosen positions.
    /// </summary>
    public int Mask(ReadOnlySpan<int> ids, int length, Span<int> input, Span<long> labels, Random rng)
    {
        ids.CopyTo(input);
        labels.Fill(IgnoreIndex);
        var groups = new List<(int Start, int Count)>();
        var candidates = 0;
        for (var i = 0; i < length; i++)
        {
            if (_special[ids[i]]) continue;
            candidates++;
            if (WholeWord && _continuation[ids[i]] && groups.Count > 0 && groups[^1].Start + groups[^1].Count == i)
                groups[^1] = (groups[^1].Start, groups[^1].Count + 1);
            else groups.Add((i, 1));
        }
        if (candidates == 0) return 0;
        var budget = Math.Max(1, (int)Math.Round(candidates * Probability, MidpointRounding.AwayFromZero));
        var order = groups.ToArray();
        rng.Shuffle(order);
        var chosen = 0;
        foreach (var (start, count) in order)
        {
            if (chosen >= budget) break;
            if (chosen + count > budget) continue;
            for (var i = start; i < start + count; i++)
            {
                labels[i] = ids[i];
                var r = rng.NextDouble();
                if (r < 0.8) input[i] = MaskTokenId;
                else if (r < 0.9) input[i] = _replacements[rng.Next(_replacements.Length)];
            }
            chosen += count;
        }
        return chosen;
    }

    // bert-base-uncased reserves [unused0]..[unused993]: never in text, so never a useful replacement.
    private static bool IsUnused(string token) => token.StartsWith("[unused", StringComparison.Ordinal);
}
