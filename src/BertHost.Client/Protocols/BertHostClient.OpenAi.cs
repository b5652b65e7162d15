using System.Buffers.Binary;
using System.Text.Json;
using BertHost.Client.Embeddings;
using Microsoft.Extensions.AI;

namespace BertHost.Client;

// OpenAI's embeddings route, errors in OpenAI's shape.
public sealed partial class BertHostClient
{
    private sealed record EmbeddingsBody(IReadOnlyList<string> Input, string? Model, string EncodingFormat, int? Dimensions, string? User);

    private sealed record EmbeddingsAnswer(string Object, IReadOnlyList<EmbeddingAnswerItem> Data, string Model, EmbeddingsUsage Usage);

    private sealed record EmbeddingAnswerItem(int Index, JsonElement Embedding);

    /// <summary>
    /// OpenAI's <c>POST /v1/embeddings</c>: one vector per input, in input order, and the tokens the body read. Limits are
    /// the host's (<c>max_inputs_per_request</c> and token limits: 413); see <see cref="Embeddings.BertHostEmbeddingGenerator"/> for batching.
    /// </summary>
    public async Task<EmbeddingsResponse> CreateEmbeddingsAsync(IEnumerable<string> inputs, OpenAiEmbeddingOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= new OpenAiEmbeddingOptions();
        var body = new EmbeddingsBody(inputs.ToList(), options.Model, options.Base64 ? "base64" : "float", options.Dimensions, options.User);
        var answer = await SendAsync<EmbeddingsAnswer>(HttpMethod.Post, "v1/embeddings", Json(body), ErrorShape.OpenAi, true, cancellationToken)
            .ConfigureAwait(false);
        var data = answer.Data.Select(d => new EmbeddingItem(d.Index, Vector(d.Embedding))).OrderBy(d => d.Index).ToList();
        return new EmbeddingsResponse(data, answer.Model, answer.Usage);
    }

    /// <summary>A vector as OpenAI sends it: an array of numbers, or base64 of little-endian float32.</summary>
    private static float[] Vector(JsonElement embedding)
    {
        if (embedding.ValueKind == JsonValueKind.Array) return embedding.Deserialize<float[]>(JsonOptions)!;
        if (embedding.ValueKind != JsonValueKind.String) throw new JsonException($"embedding must be an array or a base64 string, got {embedding.ValueKind}");
        var bytes = embedding.GetBytesFromBase64();
        if (bytes.Length % sizeof(float) != 0) throw new JsonException($"a base64 embedding of {bytes.Length} bytes is not float32 values");
        var vector = new float[bytes.Length / sizeof(float)];
        for (var i = 0; i < vector.Length; i++) vector[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * sizeof(float)));
        return vector;
    }

    /// <summary>
    /// This client as Microsoft.Extensions.AI's embedding generator over <c>/v1/embeddings</c>: <paramref name="head"/> is
    /// the embedding head (null: the host's default), <paramref name="dimensions"/> the width asked for when a call names none.
    /// </summary>
    public IEmbeddingGenerator<string, Embedding<float>> AsEmbeddingGenerator(string? head = null, int? dimensions = null) =>
        new BertHostEmbeddingGenerator(this, head, dimensions);
}
