using Microsoft.Extensions.AI;

namespace BertHost.Client.Embeddings;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IEmbeddingGenerator{TInput,TEmbedding}"/> over the host's OpenAI route: the
/// model is an embedding head (<see cref="EmbeddingGenerationOptions.ModelId"/>, else the head given here, else the
/// host's default), <see cref="EmbeddingGenerationOptions.Dimensions"/> asks for fewer dimensions (cut, then normalised
/// again). Inputs are sent in requests of at most <see cref="MaxBatchSize"/> (the host batches them with every other
/// request); usage counts the tokens the body read.
/// </summary>
public sealed class BertHostEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    /// <summary>The provider name in <see cref="EmbeddingGeneratorMetadata"/>.</summary>
    public const string ProviderName = "berthost";

    private readonly BertHostClient _client;
    private readonly string? _head;
    private readonly int? _dimensions;
    private readonly EmbeddingGeneratorMetadata _metadata;

    /// <param name="client">The client (not disposed by the generator).</param>
    /// <param name="head">The embedding head; null: the host's default (its only embedding head, or <c>protocols.embed_head</c>).</param>
    /// <param name="dimensions">The width asked for when a call names none; null: the head's.</param>
    public BertHostEmbeddingGenerator(BertHostClient client, string? head = null, int? dimensions = null)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (dimensions is < 1) throw new ArgumentOutOfRangeException(nameof(dimensions), dimensions, "dimensions must be positive");
        _client = client;
        _head = head;
        _dimensions = dimensions;
        _metadata = new EmbeddingGeneratorMetadata(ProviderName, client.BaseAddress, head, dimensions);
    }

    /// <summary>
    /// Most inputs in one request: the host refuses more than its <c>host.max_inputs_per_request</c> (default 256) with
    /// 413, so keep this at or below it.
    /// </summary>
    public int MaxBatchSize { get; init; } = 256;

    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (MaxBatchSize < 1) throw new InvalidOperationException($"MaxBatchSize must be positive, got {MaxBatchSize}");
        var request = new OpenAiEmbeddingOptions { Model = options?.ModelId ?? _head, Dimensions = options?.Dimensions ?? _dimensions };
        var result = new GeneratedEmbeddings<Embedding<float>>();
        long tokens = 0;
        foreach (var batch in values.Chunk(MaxBatchSize))
        {
            var response = await _client.CreateEmbeddingsAsync(batch, request, cancellationToken).ConfigureAwait(false);
            if (response.Data.Count != batch.Length)
                throw new InvalidOperationException($"the host answered {response.Data.Count} embeddings for {batch.Length} inputs");
            var created = DateTimeOffset.UtcNow;
            foreach (var item in response.Data)
                result.Add(new Embedding<float>(item.Embedding) { ModelId = response.Model, CreatedAt = created });
            tokens += response.Usage.PromptTokens;
        }
        result.Usage = new UsageDetails { InputTokenCount = tokens, TotalTokenCount = tokens };
        return result;
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return _metadata;
        if (serviceType == typeof(BertHostClient)) return _client;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Nothing to release: the client belongs to whoever made it.</summary>
    public void Dispose()
    {
    }
}
