using BertHost.Abstractions;
using BertHost.Core.Body;
using Microsoft.Extensions.AI;
using static TorchSharp.torch;

namespace BertHost.Embeddings;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IEmbeddingGenerator{TInput,TEmbedding}"/> over a body loaded in this process:
/// the body's <see cref="FeatureExtractor"/> pools each text's token states (mean by default), then the vector is cut
/// to the dimensions asked for and L2-normalised — what the host's <c>embedding</c> head answers over HTTP, without a
/// server. Texts run in passes of <see cref="BodyEmbeddingOptions.BatchSize"/> (similar lengths together), one pass at
/// a time per generator; cancellation is checked between passes.
/// </summary>
public sealed class BodyEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly BertBody _body;
    private readonly bool _ownsBody;
    private readonly BodyEmbeddingOptions _options;
    private readonly FeatureExtractor _extractor;
    private readonly EmbeddingGeneratorMetadata _metadata;
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <param name="body">The body; disposed with the generator only when <paramref name="ownsBody"/>.</param>
    public BodyEmbeddingGenerator(BertBody body, BodyEmbeddingOptions? options = null, bool ownsBody = false)
    {
        ArgumentNullException.ThrowIfNull(body);
        _options = options ?? new BodyEmbeddingOptions();
        if (_options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), _options.BatchSize, "BatchSize must be positive");
        if (_options.Pooling == PoolingMode.None) throw new ArgumentException("Pooling None gives a vector per token, not per text", nameof(options));
        if (_options.Pooling == PoolingMode.Pooler && !body.Model.HasPooler)
            throw new ArgumentException("Pooling Pooler needs pooler weights, which this body does not have; use Mean or Cls", nameof(options));
        Dimensions = _options.Dimensions ?? body.Config.HiddenSize;
        CheckDimensions(Dimensions, body.Config.HiddenSize, nameof(options));
        _body = body;
        _ownsBody = ownsBody;
        _extractor = new FeatureExtractor(body, _options.Pooling, _options.BatchSize, _options.MaxLength, _options.Truncation);
        ModelId = _options.ModelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(body.Folder));
        _metadata = new EmbeddingGeneratorMetadata("berthost", null, ModelId, Dimensions);
    }

    /// <summary>Loads the body from a model folder (disposed with the generator).</summary>
    public static BodyEmbeddingGenerator Load(string folder, BodyOptions? bodyOptions = null, BodyEmbeddingOptions? options = null)
    {
        var body = BertBody.Load(folder, bodyOptions);
        try
        {
            return new BodyEmbeddingGenerator(body, options, ownsBody: true);
        }
        catch
        {
            body.Dispose();
            throw;
        }
    }

    /// <summary>The model id reported with each embedding.</summary>
    public string ModelId { get; }

    /// <summary>The width of the vectors when a call asks for no other.</summary>
    public int Dimensions { get; }

    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var texts = values.ToList();
        for (var i = 0; i < texts.Count; i++)
            if (string.IsNullOrWhiteSpace(texts[i])) throw new ArgumentException($"values[{i}] is empty", nameof(values));
        if (options?.ModelId is { } model && model != ModelId)
            throw new ArgumentException($"this generator embeds with '{ModelId}', not '{model}'", nameof(options));
        var dimensions = options?.Dimensions ?? Dimensions;
        CheckDimensions(dimensions, Dimensions, nameof(options));

        var vectors = new float[texts.Count][];
        long tokens = 0;
        // Texts of similar length share a pass, so little of it is padding.
        var order = Enumerable.Range(0, texts.Count).OrderBy(i => texts[i].Length).ToArray();
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var pass in order.Chunk(_options.BatchSize))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var results = await Task.Run(() => _extractor.Embed(pass.Select(i => new EmbedInput(texts[i])).ToList()), cancellationToken)
                    .ConfigureAwait(false);
                var finished = Finish(results.Select(r => r.Embedding[0]).ToArray(), dimensions, _options.Normalize);
                for (var j = 0; j < pass.Length; j++)
                {
                    vectors[pass[j]] = finished[j];
                    tokens += results[j].InputIds.Length;
                }
            }
        }
        finally
        {
            _gate.Release();
        }

        var created = DateTimeOffset.UtcNow;
        var embeddings = new GeneratedEmbeddings<Embedding<float>>(vectors.Select(v => new Embedding<float>(v) { ModelId = ModelId, CreatedAt = created }))
        {
            Usage = new UsageDetails { InputTokenCount = tokens, TotalTokenCount = tokens },
        };
        return embeddings;
    }

    /// <summary>
    /// Each vector's first <paramref name="dimensions"/> values, L2-normalised when <paramref name="normalize"/> (as
    /// sentence-transformers does, with <c>torch.nn.functional.normalize</c>): the Matryoshka cut the embedding head makes.
    /// </summary>
    private static float[][] Finish(float[][] pooled, int dimensions, bool normalize)
    {
        using var scope = NewDisposeScope();
        var cut = tensor(pooled.SelectMany(v => v).ToArray(), [pooled.Length, pooled[0].Length]).narrow(1, 0, dimensions);
        var rows = (normalize ? nn.functional.normalize(cut, p: 2, dim: 1, eps: 1e-12) : cut).contiguous().data<float>().ToArray();
        return Enumerable.Range(0, pooled.Length).Select(r => rows.AsSpan(r * dimensions, dimensions).ToArray()).ToArray();
    }

    private static void CheckDimensions(int dimensions, int most, string parameter)
    {
        if (dimensions < 1 || dimensions > most)
            throw new ArgumentOutOfRangeException(parameter, dimensions, $"dimensions must be 1 to {most}, got {dimensions}");
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return _metadata;
        if (serviceType == typeof(BertBody)) return _body;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose()
    {
        _gate.Dispose();
        if (_ownsBody) _body.Dispose();
    }
}
