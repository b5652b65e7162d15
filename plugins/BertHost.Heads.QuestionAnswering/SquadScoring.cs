using System.Text;
using System.Text.RegularExpressions;

namespace BertHost.Heads.QuestionAnswering;

/// <summary>
/// The official SQuAD evaluation (v1.1 <c>evaluate-v1.1.py</c>, v2.0 <c>evaluate-v2.0.py</c>): answers are normalised
/// (lower-case, Python's <c>string.punctuation</c> removed, the articles a/an/the removed as whole words, whitespace
/// collapsed); exact match and token-overlap F1, each the maximum over the gold answers. With no gold answer (an
/// impossible SQuAD 2.0 question) the gold is "", and an empty answer against an empty gold scores 1 (v2.0's rule).
/// </summary>
public static partial class SquadScoring
{
    /// <summary>Python's <c>string.punctuation</c>.</summary>
    public const string Punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

    [GeneratedRegex(@"\b(a|an|the)\b")]
    private static partial Regex Articles();

    public static string Normalize(string s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var lower = s.ToLowerInvariant();
        var sb = new StringBuilder(lower.Length);
        foreach (var c in lower)
            if (!Punctuation.Contains(c)) sb.Append(c);
        var noArticles = Articles().Replace(sb.ToString(), " ");
        return string.Join(' ', Tokens(noArticles));
    }

    /// <summary>Python's <c>str.split()</c>: runs of whitespace separate, no empty tokens.</summary>
    private static string[] Tokens(string s) =>
        s.SplitOn(c => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f');

    private static string[] SplitOn(this string s, Func<char, bool> separator)
    {
        var tokens = new List<string>();
        var start = -1;
        for (var i = 0; i <= s.Length; i++)
        {
            var sep = i == s.Length || separator(s[i]);
            if (sep && start >= 0) { tokens.Add(s[start..i]); start = -1; }
            else if (!sep && start < 0) start = i;
        }
        return tokens.ToArray();
    }

    public static double ExactMatch(string prediction, string gold) => Normalize(prediction) == Normalize(gold) ? 1 : 0;

    public static double F1(string prediction, string gold)
    {
        var p = Normalize(prediction).SplitOn(c => c == ' ');
        var g = Normalize(gold).SplitOn(c => c == ' ');
        if (p.Length == 0 || g.Length == 0) return p.Length == g.Length ? 1 : 0;
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in g) counts[t] = counts.GetValueOrDefault(t) + 1;
        var same = 0;
        foreach (var t in p)
        {
            if (counts.GetValueOrDefault(t) <= 0) continue;
            counts[t]--;
            same++;
        }
        if (same == 0) return 0;
        var precision = (double)same / p.Length;
        var recall = (double)same / g.Length;
        return 2 * precision * recall / (precision + recall);
    }

    /// <summary>Gold answers as the v2.0 script: those that normalise to nothing are dropped; none left = [""].</summary>
    public static IReadOnlyList<string> Golds(IReadOnlyList<string> answers)
    {
        var kept = answers.Where(a => Normalize(a).Length > 0).ToList();
        return kept.Count == 0 ? [""] : kept;
    }

    public static double MaxExactMatch(string prediction, IReadOnlyList<string> answers) => Golds(answers).Max(g => ExactMatch(prediction, g));

    public static double MaxF1(string prediction, IReadOnlyList<string> answers) => Golds(answers).Max(g => F1(prediction, g));
}
