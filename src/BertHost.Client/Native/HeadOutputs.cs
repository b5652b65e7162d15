using System.Text.Json.Serialization;

// Inputs, request parameters and outputs of the built-in head kinds, as docs/heads.md describes them.
namespace BertHost.Client;

/// <summary>A text (and optionally its pair) for text-classification heads.</summary>
public sealed record TextInput(string Text, string? TextPair = null)
{
    public static implicit operator TextInput(string text) => new(text);
}

/// <summary>text-classification request parameters.</summary>
public sealed record ClassificationParameters
{
    /// <summary>Adds <see cref="ClassificationResult.Top"/>: the k best labels.</summary>
    public int? TopK { get; init; }

    /// <summary><c>softmax</c> (default), <c>sigmoid</c> or <c>none</c>.</summary>
    public string? FunctionToApply { get; init; }
}

/// <summary>A text-classification head's output.</summary>
public sealed record ClassificationResult(string Label, double Score, IReadOnlyDictionary<string, double> Scores)
{
    /// <summary>The k best labels when <see cref="ClassificationParameters.TopK"/> was given.</summary>
    public IReadOnlyList<LabelScore>? Top { get; init; }
}

public sealed record LabelScore(string Label, double Score);

/// <summary>A token-classification input: a text, or words already split (<see cref="FromWords"/>).</summary>
public sealed record TokenClassificationInput
{
    public string? Text { get; init; }
    public IReadOnlyList<string>? Tokens { get; init; }

    public static TokenClassificationInput FromText(string text) => new() { Text = text };

    public static TokenClassificationInput FromWords(IReadOnlyList<string> words) => new() { Tokens = words };

    public static implicit operator TokenClassificationInput(string text) => FromText(text);
}

/// <summary>token-classification request parameters.</summary>
public sealed record TokenClassificationParameters
{
    /// <summary><c>none</c> (default: one entry per sub-token), <c>simple</c>, <c>first</c>, <c>average</c> or <c>max</c>.</summary>
    public string? Aggregation { get; init; }

    /// <summary>Labels left out of the answer (default <c>["O"]</c>).</summary>
    public IReadOnlyList<string>? IgnoreLabels { get; init; }
}

/// <summary>
/// One entity of a token-classification output: a sub-token (<see cref="Entity"/>, <see cref="Index"/>) without
/// aggregation, an entity group (<see cref="EntityGroup"/>) with it. Offsets are characters of the original text.
/// </summary>
public sealed record TokenEntity(string Word, double Score, int Start, int End)
{
    public string? Entity { get; init; }
    public string? EntityGroup { get; init; }
    public int? Index { get; init; }

    /// <summary>Set when the input needed several windows: the one this entry came from.</summary>
    public int? Window { get; init; }

    /// <summary>The group's or the sub-token's label.</summary>
    [JsonIgnore]
    public string Label => EntityGroup ?? Entity ?? "";
}

/// <summary>A question-answering input.</summary>
public sealed record QuestionAnsweringInput(string Question, string Context);

/// <summary>question-answering request parameters (<c>top_k</c> is given by the method called).</summary>
public sealed record QuestionAnsweringParameters
{
    public int? MaxAnswerLen { get; init; }
    public int? MaxQuestionLen { get; init; }
    public int? DocStride { get; init; }
    public int? MaxSeqLen { get; init; }
    public bool? HandleImpossibleAnswer { get; init; }
    public bool? AlignToWords { get; init; }
}

/// <summary>An answer span: character offsets into the original context.</summary>
public sealed record QuestionAnsweringResult(string Answer, double Score, int Start, int End);

/// <summary>A multiple-choice input: each choice is paired with the context (and the question, when given).</summary>
public sealed record MultipleChoiceInput(string Context, IReadOnlyList<string> Choices, string? Question = null);

/// <summary>A multiple-choice head's output: the chosen index and text, a logit and a probability per choice.</summary>
public sealed record MultipleChoiceResult(int Choice, string Label, IReadOnlyList<double> Scores, IReadOnlyList<double> Probabilities);

/// <summary>embedding request parameters.</summary>
public sealed record EmbeddingParameters
{
    /// <summary>Fewer dimensions than the head's: cut, then normalised again.</summary>
    public int? Dimensions { get; init; }

    public bool? Normalize { get; init; }

    /// <summary>false: an input longer than the head accepts is refused (422); default: the deployment's policy.</summary>
    public bool? Truncate { get; init; }

    /// <summary><c>right</c> (default) keeps the start, <c>left</c> the end.</summary>
    public string? TruncationDirection { get; init; }
}

/// <summary>An embedding head's output: the vector and the tokens the body read (special tokens included).</summary>
public sealed record EmbeddingOutput(float[] Embedding, int Tokens);
