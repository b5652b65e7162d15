using BertHost.Abstractions.Heads;
using System.Text.Json.Nodes;

namespace BertHost.Heads.TokenClassification;

/// <summary>The pipeline's <c>aggregation_strategy</c>.</summary>
public enum AggregationStrategy { None, Simple, First, Average, Max }

/// <summary>One content token as the pipeline's <c>gather_pre_entities</c> sees it, with offsets into the input's text.</summary>
internal sealed record PreEntity(string Word, double[] Scores, int Start, int End, int Index, bool IsSubword, int Window);

/// <summary>A token (strategy none/simple) or a word (first/average/max) with its label, before grouping.</summary>
internal sealed record TaggedSpan(string Entity, double Score, string Word, int Start, int End, int Index, int Window);

/// <summary>
/// transformers' <c>TokenClassificationPipeline</c> post-processing over the tokens of one input: per-token argmax
/// (none, simple) or word-level aggregation (first: the first sub-token's label; average: argmax of the mean scores;
/// max: the label of the sub-token with the highest score), then the grouping of adjacent tokens/words into entity groups
/// (a B- tag or another type starts a new group; a tag without a B-/I- prefix counts as I-), group score = mean of the
/// member scores, and ignore_labels filtering. Words are made of the tokens the pipeline calls sub-words: a token whose
/// string length differs from its text span (a "##" piece); [UNK] is never a sub-word.
/// </summary>
internal static class EntityAggregator
{
    public static AggregationStrategy Parse(string value) => value.ToLowerInvariant() switch
    {
        "none" => AggregationStrategy.None,
        "simple" => AggregationStrategy.Simple,
        "first" => AggregationStrategy.First,
        "average" => AggregationStrategy.Average,
        "max" => AggregationStrategy.Max,
        _ => throw new ArgumentException($"aggregation '{value}' is not one of none, simple, first, average, max"),
    };

    public static string Name(AggregationStrategy s) => s.ToString().ToLowerInvariant();

    /// <param name="text">The input's text (for pre-split words: the words joined by single spaces); words of groups are slices of it.</param>
    /// <param name="showWindow">Add the window of each token to strategy-none entries (inputs longer than one window).</param>
    public static JsonArray Run(IReadOnlyList<PreEntity> pre, AggregationStrategy strategy, IReadOnlyList<string> labels,
        IReadOnlySet<string> ignoreLabels, string text, bool showWindow)
    {
        var tagged = strategy is AggregationStrategy.None or AggregationStrategy.Simple
            ? pre.Select(p =>
            {
                var best = HeadMath.ArgMax(p.Scores);
                return new TaggedSpan(labels[best], p.Scores[best], p.Word, p.Start, p.End, p.Index, p.Window);
            }).ToList()
            : AggregateWords(pre, strategy, labels, text);

        var result = new JsonArray();
        if (strategy == AggregationStrategy.None)
        {
            foreach (var t in tagged.Where(t => !ignoreLabels.Contains(t.Entity)))
            {
                var o = new JsonObject
                {
                    ["entity"] = t.Entity, ["score"] = t.Score, ["index"] = t.Index, ["word"] = t.Word, ["start"] = t.Start, ["end"] = t.End,
                };
                if (showWindow) o["window"] = t.Window;
                result.Add(o);
            }
            return result;
        }
        foreach (var group in Group(tagged))
        {
            var name = GroupName(group[0].Entity);
            if (ignoreLabels.Contains(name)) continue;
            int start = group[0].Start, end = group[^1].End;
            result.Add(new JsonObject
            {
                ["entity_group"] = name, ["score"] = group.Average(g => g.Score), ["word"] = text[start..end], ["start"] = start, ["end"] = end,
            });
        }
        return result;
    }

    private static List<TaggedSpan> AggregateWords(IReadOnlyList<PreEntity> pre, AggregationStrategy strategy, IReadOnlyList<string> labels, string text)
    {
        var words = new List<TaggedSpan>();
        var group = new List<PreEntity>();
        foreach (var p in pre)
        {
            if (group.Count > 0 && !p.IsSubword)
            {
                words.Add(AggregateWord(group, strategy, labels, text));
                group.Clear();
            }
            group.Add(p);
        }
        if (group.Count > 0) words.Add(AggregateWord(group, strategy, labels, text));
        return words;
    }

    private static TaggedSpan AggregateWord(List<PreEntity> tokens, AggregationStrategy strategy, IReadOnlyList<string> labels, string text)
    {
        double[] scores;
        switch (strategy)
        {
            case AggregationStrategy.First:
                scores = tokens[0].Scores;
                break;
            case AggregationStrategy.Max:
                scores = tokens[0].Scores;
                foreach (var t in tokens.Skip(1))
                    if (t.Scores.Max() > scores.Max()) scores = t.Scores;
                break;
            case AggregationStrategy.Average:
                scores = new double[labels.Count];
                foreach (var t in tokens)
                    for (var j = 0; j < scores.Length; j++) scores[j] += t.Scores[j];
                for (var j = 0; j < scores.Length; j++) scores[j] /= tokens.Count;
                break;
            default:
                throw new ArgumentException($"aggregation {strategy} does not aggregate words");
        }
        var best = HeadMath.ArgMax(scores);
        int start = tokens[0].Start, end = tokens[^1].End;
        return new TaggedSpan(labels[best], scores[best], text[start..end], start, end, tokens[0].Index, tokens[0].Window);
    }

    /// <summary>HF group_entities: a token/word joins the open group when its tag type equals the group's last one and it is not B-.</summary>
    private static List<List<TaggedSpan>> Group(List<TaggedSpan> tagged)
    {
        var groups = new List<List<TaggedSpan>>();
        List<TaggedSpan>? open = null;
        foreach (var t in tagged)
        {
            if (open is not null)
            {
                var (bi, tag) = Tag(t.Entity);
                var (_, lastTag) = Tag(open[^1].Entity);
                if (tag == lastTag && bi != 'B')
                {
                    open.Add(t);
                    continue;
                }
                groups.Add(open);
            }
            open = [t];
        }
        if (open is not null) groups.Add(open);
        return groups;
    }

    /// <summary>HF get_tag: ("B", type) for B-type, ("I", type) for I-type, ("I", label) otherwise.</summary>
    internal static (char Bi, string Tag) Tag(string label) =>
        label.StartsWith("B-", StringComparison.Ordinal) ? ('B', label[2..])
        : label.StartsWith("I-", StringComparison.Ordinal) ? ('I', label[2..])
        : ('I', label);

    /// <summary>HF group_sub_entities: the first member's label after its first '-' (or the whole label).</summary>
    private static string GroupName(string label)
    {
        var dash = label.IndexOf('-');
        return dash < 0 ? label : label[(dash + 1)..];
    }
}
