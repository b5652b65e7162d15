namespace BertHost.Heads.MultipleChoice;

/// <summary>What <see cref="MultipleChoiceHead.Encode"/> and the training readers keep in <c>HeadFeatures.State</c>.</summary>
public sealed class MultipleChoiceState
{
    /// <summary>The choices as given, one per sequence (the <c>label</c> of a response is the winning one).</summary>
    public required IReadOnlyList<string> Choices { get; init; }

    /// <summary>Training: the index of the right choice.</summary>
    public int? Label { get; init; }

    /// <summary>Where a training example came from (file:line), for messages.</summary>
    public string? Source { get; init; }
}
