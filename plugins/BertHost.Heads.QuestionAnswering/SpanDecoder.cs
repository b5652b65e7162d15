using BertHost.Abstractions.Text;
using BertHost.Abstractions.Heads;

namespace BertHost.Heads.QuestionAnswering;

/// <summary>One answer: <see cref="Start"/>/<see cref="End"/> are UTF-16 offsets into the original context.</summary>
public sealed record QaAnswer(string Answer, double Score, int Start, int End);

/// <summary>
/// The question-answering pipeline's decoding (transformers <c>pipelines/question_answering.py</c>,
/// <c>select_starts_ends</c> + <c>decode_spans</c> + <c>postprocess</c>), on the start/end logits of every window of
/// one input:
/// <list type="number">
/// <item>per window, tokens outside the context get logit -10000, except [CLS] (the pipeline's p_mask keeps [CLS]
/// unmasked, always); start and end logits are soft-maxed separately over the window;</item>
/// <item>the null score of the window is p_start([CLS]) * p_end([CLS]); the input's null score is the minimum over its
/// windows; then [CLS] gets probability 0;</item>
/// <item>span score = p_start(s) * p_end(e) for context tokens s &lt;= e &lt; s + max_answer_len; the window's top_k spans
/// by score;</item>
/// <item>a span becomes characters through the words of its first and last tokens (<c>align_to_words</c>, default) or
/// the tokens' own offsets;</item>
/// <item>every window's answers (in window order), then the null answer ("" at 0..0) when handle_impossible_answer,
/// are sorted by score (stable) and cut to top_k.</item>
/// </list>
/// </summary>
public static class SpanDecoder
{
    /// <summary>Logit of the tokens that cannot be part of an answer, as the pipeline.</summary>
    public const double MaskedLogit = -10000.0;

    /// <param name="context">The original context.</param>
    /// <param name="windows">The windows (question + context) of the input.</param>
    /// <param name="startLogits">Per window, at least <c>windows[i].Length</c> start logits.</param>
    /// <param name="endLogits">Per window, at least <c>windows[i].Length</c> end logits.</param>
    public static IReadOnlyList<QaAnswer> Decode(string context, IReadOnlyList<EncodedSequence> windows,
        IReadOnlyList<ReadOnlyMemory<float>> startLogits, IReadOnlyList<ReadOnlyMemory<float>> endLogits,
        DecodeSettings settings, int clsTokenId)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(windows);
        ArgumentNullException.ThrowIfNull(settings);
        if (startLogits.Count != windows.Count || endLogits.Count != windows.Count)
            throw new ArgumentException($"{windows.Count} windows but {startLogits.Count} start and {endLogits.Count} end logit rows");

        var answers = new List<QaAnswer>();
        var minNullScore = 1_000_000.0;
        for (var w = 0; w < windows.Count; w++)
        {
            var window = windows[w];
            var n = window.Length;
            if (startLogits[w].Length < n || endLogits[w].Length < n)
                throw new ArgumentException($"window {w} has {n} tokens but fewer logits");
            var inSoftmax = new bool[n];
            for (var t = 0; t < n; t++) inSoftmax[t] = window.SequenceIds[t] == 1 || window.InputIds[t] == clsTokenId;
            var ps = Softmax(startLogits[w].Span[..n], inSoftmax);
            var pe = Softmax(endLogits[w].Span[..n], inSoftmax);
            if (settings.HandleImpossibleAnswer) minNullScore = Math.Min(minNullScore, ps[0] * pe[0]);
            ps[0] = pe[0] = 0;

            foreach (var (s, e, score) in TopSpans(window, ps, pe, settings.TopK, settings.MaxAnswerLen))
            {
                var (start, end) = Characters(window, s, e, settings.AlignToWords);
                answers.Add(new QaAnswer(start < end ? context[start..end] : "", score, start, end));
            }
        }
        if (settings.HandleImpossibleAnswer) answers.Add(new QaAnswer("", minNullScore, 0, 0));
        return answers.OrderByDescending(a => a.Score).Take(settings.TopK).ToList();   // OrderBy is stable, as sorted()
    }

    private static double[] Softmax(ReadOnlySpan<float> logits, bool[] keep)
    {
        var p = new double[logits.Length];
        for (var t = 0; t < p.Length; t++) p[t] = keep[t] ? logits[t] : MaskedLogit;
        HeadMath.SoftmaxInPlace(p);
        return p;
    }

    /// <summary>The k best spans of context tokens s &lt;= e &lt; s + maxAnswerLen by p_start(s) * p_end(e); ties by (s, e).</summary>
    private static IEnumerable<(int S, int E, double Score)> TopSpans(EncodedSequence window, double[] ps, double[] pe, int k, int maxAnswerLen)
    {
        var candidates = new List<(int S, int E, double Score)>();
        var n = window.Length;
        for (var s = 0; s < n; s++)
        {
            if (window.SequenceIds[s] != 1) continue;
            for (var e = s; e < n && e - s < maxAnswerLen; e++)
                if (window.SequenceIds[e] == 1) candidates.Add((s, e, ps[s] * pe[e]));
        }
        return candidates.OrderByDescending(c => c.Score).ThenBy(c => c.S).ThenBy(c => c.E).Take(k);
    }

    /// <summary>
    /// Character span of tokens s..e: with align_to_words, from the start of the first token's word to the end of the
    /// last token's word (the word's tokens within this window, as the fast tokenizer's word_to_chars); else the offsets.
    /// </summary>
    internal static (int Start, int End) Characters(EncodedSequence window, int s, int e, bool alignToWords)
    {
        if (!alignToWords || window.WordIds[s] is not { } startWord || window.WordIds[e] is not { } endWord)
            return (window.Offsets[s].Start, window.Offsets[e].End);
        int first = s, last = e;
        for (var t = 0; t < window.Length; t++)
        {
            if (window.SequenceIds[t] != 1) continue;
            if (window.WordIds[t] == startWord) { first = t; break; }
        }
        for (var t = window.Length - 1; t >= 0; t--)
        {
            if (window.SequenceIds[t] != 1) continue;
            if (window.WordIds[t] == endWord) { last = t; break; }
        }
        return (window.Offsets[first].Start, window.Offsets[last].End);
    }
}
