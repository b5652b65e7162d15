namespace BertHost.Abstractions.Heads;

/// <summary>The checks of a head's <c>labels:</c> that every labelled kind makes; each problem is a <see cref="HeadConfigurationException"/> on <c>labels</c>.</summary>
public static class HeadLabels
{
    /// <summary>Every label is a non-blank name and none is listed twice.</summary>
    public static void CheckNames(IReadOnlyList<string> labels)
    {
        if (labels.Any(string.IsNullOrWhiteSpace)) throw new HeadConfigurationException("labels", "labels must be non-empty names");
        var duplicate = labels.GroupBy(l => l, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new HeadConfigurationException("labels", $"label '{duplicate.Key}' is listed twice");
    }

    /// <summary>A loaded classifier of <paramref name="rows"/> outputs (null: none loaded) has one per label.</summary>
    /// <param name="weightsDescription">How the message names the weights, e.g. <c>the head folder x</c>.</param>
    public static void CheckClassifierRows(string weightsDescription, int? rows, IReadOnlyList<string> labels)
    {
        if (rows is { } r && r != labels.Count)
            throw new HeadConfigurationException("labels", $"{weightsDescription} has a classifier for {r} labels but the head has {labels.Count} labels ([{string.Join(", ", labels)}])");
    }

    /// <summary>
    /// The head's labels: the configuration's, which must equal the weights' when both name them; else the weights'.
    /// </summary>
    /// <param name="configured">The YAML <c>labels</c>, or null.</param>
    /// <param name="stored">The labels the weights carry (head.json, id2label), or null.</param>
    /// <param name="weightsDescription">How the message names the weights, e.g. <c>the head folder x</c>.</param>
    /// <param name="fresh">True when no weights are loaded.</param>
    /// <param name="freshHint">What a fresh head without labels is told, e.g. "a fresh ... head needs labels: ...".</param>
    public static IReadOnlyList<string> Resolve(IReadOnlyList<string>? configured, IReadOnlyList<string>? stored,
        string weightsDescription, bool fresh, string freshHint)
    {
        if (configured is not null)
        {
            if (stored is not null && !configured.SequenceEqual(stored, StringComparer.Ordinal))
                throw new HeadConfigurationException("labels",
                    $"labels [{string.Join(", ", configured)}] in the configuration differ from [{string.Join(", ", stored)}] in {weightsDescription} (same names in the same order are needed; or leave labels out to use the weights' labels)");
            return configured;
        }
        return stored ?? throw new HeadConfigurationException("labels",
            fresh ? freshHint : $"{weightsDescription} names no labels; list them in the head's 'labels'");
    }
}
