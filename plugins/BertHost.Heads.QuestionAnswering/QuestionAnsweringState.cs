namespace BertHost.Heads.QuestionAnswering;

/// <summary>The decoding settings of one request (the pipeline's postprocess parameters).</summary>
public sealed record DecodeSettings(int TopK, int MaxAnswerLen, bool HandleImpossibleAnswer, bool AlignToWords);

/// <summary>What <see cref="QuestionAnsweringHead.Encode"/> and the training readers keep in <c>HeadFeatures.State</c>.</summary>
public sealed class QuestionAnsweringState
{
    /// <summary>The original context: answers are slices of it.</summary>
    public required string Context { get; init; }

    public required DecodeSettings Settings { get; init; }

    /// <summary>Training: per window (sequence), the gold start and end token; (0, 0) = [CLS] (no answer in the window).</summary>
    public int[]? StartPositions { get; init; }
    public int[]? EndPositions { get; init; }

    /// <summary>Evaluation: every gold answer text (empty for an impossible SQuAD 2.0 question).</summary>
    public IReadOnlyList<string>? GoldAnswers { get; init; }

    /// <summary>The SQuAD question id and where it came from, for messages.</summary>
    public string? Id { get; init; }
    public string? Source { get; init; }
}
