namespace BertHost.Abstractions.Text;

/// <summary>Which sequence loses tokens when an input is longer than <see cref="EncodeOptions.MaxLength"/>
/// (the Hugging Face truncation strategies).</summary>
public enum TruncationStrategy
{
    /// <summary>Cut the longer sequence first (both, evenly, when both are long).</summary>
    LongestFirst,
    /// <summary>Cut only the first sequence.</summary>
    OnlyFirst,
    /// <summary>Cut only the second sequence (question answering: question + context).</summary>
    OnlySecond,
    /// <summary>Never truncate; <see cref="EncodeOptions.MaxLength"/> is ignored.</summary>
    DoNotTruncate,
}

/// <summary>Options of <see cref="ITextTokenizer.Encode"/>, mirroring transformers' fast tokenizer arguments.</summary>
public sealed record EncodeOptions
{
    /// <summary>Maximum length of one window including special tokens; null = the tokenizer's model_max_length.</summary>
    public int? MaxLength { get; init; }

    public TruncationStrategy Truncation { get; init; } = TruncationStrategy.LongestFirst;

    /// <summary>Tokens shared by consecutive windows (return_overflowing_tokens with stride).</summary>
    public int Stride { get; init; }

    /// <summary>Return every window (HF's encoding + encoding.overflowing) instead of only the first.</summary>
    public bool ReturnOverflowing { get; init; }

    public bool AddSpecialTokens { get; init; } = true;

    public static EncodeOptions Default { get; } = new();
}
