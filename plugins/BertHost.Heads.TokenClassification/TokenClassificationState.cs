namespace BertHost.Heads.TokenClassification;

/// <summary>What <see cref="TokenClassificationHead.Encode"/> and the training readers keep in <c>HeadFeatures.State</c>.</summary>
public sealed class TokenClassificationState
{
    /// <summary>The input's text; for pre-split words, the words joined by single spaces (as transformers' pipeline does).</summary>
    public required string Text { get; init; }

    /// <summary>For pre-split words: where each word starts in <see cref="Text"/> (token offsets are relative to their word); null for text.</summary>
    public int[]? WordStarts { get; init; }

    /// <summary>How the windows cover the input's tokens.</summary>
    public required TokenWindows Windows { get; init; }

    /// <summary>Request parameter <c>aggregation</c> (default none).</summary>
    public AggregationStrategy Aggregation { get; init; }

    /// <summary>Request parameter <c>ignore_labels</c> (default ["O"]).</summary>
    public IReadOnlySet<string> IgnoreLabels { get; init; } = new HashSet<string> { "O" };

    /// <summary>Training: per window, the label id of each position, -100 where no loss is taken (specials, later sub-tokens, tokens labelled in another window).</summary>
    public int[][]? TokenLabels { get; init; }

    /// <summary>Training: the gold tag id of every word (for the entity metric).</summary>
    public int[]? WordTags { get; init; }

    /// <summary>Where a training example came from (file:line), for messages.</summary>
    public string? Source { get; init; }
}
