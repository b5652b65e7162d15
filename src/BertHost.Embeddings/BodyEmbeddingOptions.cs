using BertHost.Abstractions;
using BertHost.Abstractions.Text;

namespace BertHost.Embeddings;

/// <summary>How <see cref="BodyEmbeddingGenerator"/> turns token states into one vector per text.</summary>
public sealed record BodyEmbeddingOptions
{
    /// <summary>Mean over real tokens (default, as sentence-transformers), <c>Cls</c>, <c>Max</c> or <c>Pooler</c>.</summary>
    public PoolingMode Pooling { get; init; } = PoolingMode.Mean;

    /// <summary>Divide each vector by its L2 norm (default), so a dot product is the cosine.</summary>
    public bool Normalize { get; init; } = true;

    /// <summary>Keep the first N values (then normalise again); null: the hidden size. A call's options may ask for fewer.</summary>
    public int? Dimensions { get; init; }

    /// <summary>Texts per body pass.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Tokens per text, special tokens included (longer texts are cut at the end); null: the body's limit.</summary>
    public int? MaxLength { get; init; }

    /// <summary>The model id reported; null: the body folder's name.</summary>
    public string? ModelId { get; init; }

    internal TruncationStrategy Truncation => TruncationStrategy.LongestFirst;
}
