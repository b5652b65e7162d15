namespace BertHost.Client;

/// <summary>Options of OpenAI's <c>POST /v1/embeddings</c>.</summary>
public sealed record OpenAiEmbeddingOptions
{
    /// <summary>The embedding head; null: the deployment's only embedding head or its <c>protocols.embed_head</c>.</summary>
    public string? Model { get; init; }

    /// <summary>Fewer dimensions than the head's: the vector is cut, then normalised again.</summary>
    public int? Dimensions { get; init; }

    /// <summary>Ask for base64 (little-endian float32; default: compact and bit-exact) or floats; the result is the same vectors.</summary>
    public bool Base64 { get; init; } = true;

    /// <summary>Sent as OpenAI's <c>user</c> (the host ignores it).</summary>
    public string? User { get; init; }
}

/// <summary>The answer of OpenAI's <c>POST /v1/embeddings</c>: the vectors in input order, the head that answered, the tokens read.</summary>
public sealed record EmbeddingsResponse(IReadOnlyList<EmbeddingItem> Data, string Model, EmbeddingsUsage Usage);

/// <summary>One input's vector, at its input's index.</summary>
public sealed record EmbeddingItem(int Index, float[] Embedding);

/// <summary>Tokens the body read for all inputs, special tokens included.</summary>
public sealed record EmbeddingsUsage(long PromptTokens, long TotalTokens);
