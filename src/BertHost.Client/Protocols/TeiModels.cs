namespace BertHost.Client;

/// <summary>Options of text-embeddings-inference's <c>POST /embed</c>.</summary>
public sealed record TeiEmbedOptions
{
    /// <summary>L2-normalise (default: the head's option).</summary>
    public bool? Normalize { get; init; }

    /// <summary>false: an input longer than the head accepts is refused (422); default: the deployment's policy.</summary>
    public bool? Truncate { get; init; }

    /// <summary><c>Right</c> (default) keeps the start of a long text, <c>Left</c> its end.</summary>
    public string? TruncationDirection { get; init; }

    /// <summary>BertHost's extension: fewer dimensions than the head's.</summary>
    public int? Dimensions { get; init; }

    /// <summary>BertHost's extension: the embedding head (default <c>protocols.embed_head</c> or the only one).</summary>
    public string? Model { get; init; }
}

/// <summary>Options of text-embeddings-inference's <c>POST /rerank</c>.</summary>
public sealed record RerankOptions
{
    /// <summary>The logit instead of the probability.</summary>
    public bool? RawScores { get; init; }

    /// <summary>Echo each text in its rank.</summary>
    public bool? ReturnText { get; init; }

    public bool? Truncate { get; init; }

    /// <summary>BertHost's extension: the text-classification head scoring (query, text) pairs (default <c>protocols.rerank_head</c> or the only one).</summary>
    public string? Model { get; init; }
}

/// <summary>One text's rank: its index in the request and its relevance score (best first).</summary>
public sealed record RerankResult(int Index, float Score, string? Text);

/// <summary>A token of <c>POST /tokenize</c>: its id, the slice of the input it covers (a special token: its name) and character offsets (null for special tokens).</summary>
public sealed record TeiToken(int Id, string Text, bool Special, int? Start, int? Stop);
