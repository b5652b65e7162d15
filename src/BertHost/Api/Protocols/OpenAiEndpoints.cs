using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Http;

namespace BertHost.Api.Protocols;

/// <summary>
/// OpenAI's <c>POST /v1/embeddings</c> over embedding heads (<c>model</c> = head name), so OpenAI clients and SDKs work
/// unchanged: <c>input</c> a string or array of strings, <c>encoding_format</c> <c>float</c> or <c>base64</c>
/// (little-endian float32), <c>dimensions</c> (fewer than the head's: cut, then normalised again), <c>user</c> ignored;
/// <c>usage</c> counts the tokens the body read. Errors in OpenAI's shape.
/// </summary>
internal sealed class OpenAiEndpoints(IInferenceEngine engine, ApiOptions options)
{
    public const string EmbeddingKind = "embedding";
    private static readonly string[] Fields = ["input", "model", "encoding_format", "dimensions", "user"];

    public async Task EmbeddingsAsync(HttpContext context)
    {
        var root = await JsonRequestReader.ReadAsync(context, options.MaxRequestBytes);
        var fields = ProtocolHeads.Fields(root, Fields);
        if (!fields.TryGetValue("input", out var input)) throw ApiException.BadRequest("input is required", "input");
        var texts = ProtocolHeads.Texts(input, "input", options.MaxInputsPerRequest);
        RequestInfo.Of(context).Inputs = texts.Count;
        var model = fields.TryGetValue("model", out var m) ? ProtocolHeads.String(m, "model") : null;
        var base64 = (fields.TryGetValue("encoding_format", out var f) ? ProtocolHeads.String(f, "encoding_format") : null) switch
        {
            null or "float" => false,
            "base64" => true,
            var other => throw ApiException.BadRequest($"encoding_format '{other}' is not one of float, base64", "encoding_format"),
        };
        int? dimensions = null;
        if (fields.TryGetValue("dimensions", out var d) && d.ValueKind != JsonValueKind.Null)
            dimensions = d.ValueKind == JsonValueKind.Number && d.TryGetInt32(out var n) && n >= 1
                ? n : throw ApiException.BadRequest($"dimensions must be a positive integer, got {d.GetRawText()}", "dimensions");

        var head = ProtocolHeads.Resolve(context, engine, model, EmbeddingKind, options.Protocols.EmbedHead, "model");
        var outputs = await Predict(engine, head.Name, texts, ProtocolHeads.Parameters(("dimensions", dimensions)), context.RequestAborted);

        long tokens = 0;
        await ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartObject();
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            for (var i = 0; i < outputs.Count; i++)
            {
                var (vector, count) = Embedding(outputs[i]);
                tokens += count;
                w.WriteStartObject();
                w.WriteString("object", "embedding");
                w.WriteNumber("index", i);
                if (base64) w.WriteString("embedding", Convert.ToBase64String(LittleEndian(vector)));
                else
                {
                    w.WriteStartArray("embedding");
                    foreach (var v in vector) w.WriteNumberValue(v);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString("model", head.Name);
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", tokens);
            w.WriteNumber("total_tokens", tokens);
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    /// <summary>Runs the texts through an embedding head (the engine batches them with every other request).</summary>
    internal static async Task<IReadOnlyList<JsonNode>> Predict(IInferenceEngine engine, string head, IReadOnlyList<string> texts, JsonElement parameters, CancellationToken cancellationToken)
    {
        var outputs = await engine.PredictAsync(head, ProtocolHeads.AsInputs(texts), parameters, cancellationToken);
        if (outputs.Count != texts.Count)
            throw new InvalidOperationException($"engine returned {outputs.Count} output(s) for {texts.Count} input(s) (head {head})");
        return outputs;
    }

    /// <summary>An embedding head's output: its vector and the tokens the body read.</summary>
    internal static (float[] Vector, int Tokens) Embedding(JsonNode output)
    {
        if (output is not JsonObject o || o["embedding"] is not JsonArray values)
            throw new InvalidOperationException("the embedding head's output has no embedding array");
        var vector = values.Select(v => v!.GetValue<float>()).ToArray();
        return (vector, o["tokens"] is JsonValue t ? t.GetValue<int>() : 0);
    }

    private static byte[] LittleEndian(float[] vector)
    {
        var bytes = new byte[vector.Length * sizeof(float)];
        for (var i = 0; i < vector.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), vector[i]);
        return bytes;
    }
}
