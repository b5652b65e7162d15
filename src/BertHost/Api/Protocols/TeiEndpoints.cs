using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Http;

namespace BertHost.Api.Protocols;

/// <summary>
/// Hugging Face text-embeddings-inference's routes, in its JSON: <c>POST /embed</c> (an embedding head),
/// <c>POST /rerank</c> (a sentence-pair text-classification head, cross-encoder style) and <c>POST /tokenize</c> (the
/// served body's tokenizer). A head is chosen with the extra field <c>model</c> (a head name), else the deployment's
/// <c>protocols:</c> default, else the only head of the kind. Errors in TEI's <c>{"error", "error_type"}</c>.
/// </summary>
internal sealed class TeiEndpoints(IInferenceEngine engine, ApiOptions options)
{
    public const string ClassificationKind = "text-classification";
    private static readonly string[] EmbedFields = ["inputs", "normalize", "truncate", "truncation_direction", "prompt_name", "dimensions", "model"];
    private static readonly string[] RerankFields = ["query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction", "model"];
    private static readonly string[] TokenizeFields = ["inputs", "add_special_tokens", "prompt_name"];

    public async Task EmbedAsync(HttpContext context)
    {
        var fields = await ReadAsync(context, EmbedFields);
        var texts = Inputs(context, fields);
        var head = ProtocolHeads.Resolve(context, engine, Model(fields), OpenAiEndpoints.EmbeddingKind, options.Protocols.EmbedHead, "model");
        int? dimensions = null;
        if (fields.TryGetValue("dimensions", out var d) && d.ValueKind != JsonValueKind.Null)
            dimensions = d.ValueKind == JsonValueKind.Number && d.TryGetInt32(out var n) && n >= 1
                ? n : throw ApiException.BadRequest($"dimensions must be a positive integer, got {d.GetRawText()}", "dimensions");
        var parameters = ProtocolHeads.Parameters(
            ("normalize", Optional(fields, "normalize", ProtocolHeads.Bool)),
            ("truncate", Optional(fields, "truncate", ProtocolHeads.Bool)),
            ("truncation_direction", Direction(fields)),
            ("dimensions", dimensions));
        var outputs = await OpenAiEndpoints.Predict(engine, head.Name, texts, parameters, context.RequestAborted);
        await ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartArray();
            foreach (var output in outputs)
            {
                w.WriteStartArray();
                foreach (var v in OpenAiEndpoints.Embedding(output).Vector) w.WriteNumberValue(v);
                w.WriteEndArray();
            }
            w.WriteEndArray();
        });
    }

    public async Task RerankAsync(HttpContext context)
    {
        var fields = await ReadAsync(context, RerankFields);
        if (!fields.TryGetValue("query", out var q)) throw ApiException.BadRequest("query is required", "query");
        var query = ProtocolHeads.String(q, "query") ?? throw ApiException.BadRequest("query must be a string", "query");
        if (!fields.TryGetValue("texts", out var t)) throw ApiException.BadRequest("texts is required", "texts");
        if (t.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest($"texts must be an array of strings, got {JsonKinds.Describe(t.ValueKind)}", "texts");
        var texts = ProtocolHeads.Texts(t, "texts", options.MaxInputsPerRequest);
        RequestInfo.Of(context).Inputs = texts.Count;
        var raw = Optional(fields, "raw_scores", ProtocolHeads.Bool) ?? false;
        var returnText = Optional(fields, "return_text", ProtocolHeads.Bool) ?? false;
        Optional(fields, "truncate", ProtocolHeads.Bool);
        if (Direction(fields) == "left")
            throw ApiException.BadRequest("truncation_direction Left is not supported by /rerank: a pair is truncated from the right, longest text first", "truncation_direction");
        var head = ProtocolHeads.Resolve(context, engine, Model(fields), ClassificationKind, options.Protocols.RerankHead, "model");
        if (head.Labels.Count == 0) throw new InvalidOperationException($"head '{head.Name}' has no labels");

        // A cross-encoder with one output is scored by its logit (sigmoid of it unless raw); with several labels, by the
        // last label's probability (or logit): relevant is the last class, as cross-encoders trained with two labels use it.
        var function = raw ? "none" : head.Labels.Count == 1 ? "sigmoid" : "softmax";
        var positive = head.Labels[^1];
        var inputs = texts.Select(text => JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["text"] = query, ["text_pair"] = text })).ToList();
        var outputs = await engine.PredictAsync(head.Name, inputs, ProtocolHeads.Parameters(("function_to_apply", function)), context.RequestAborted);
        if (outputs.Count != texts.Count)
            throw new InvalidOperationException($"engine returned {outputs.Count} output(s) for {texts.Count} input(s) (head {head.Name})");
        var ranks = outputs.Select((o, i) => (Index: i, Score: Score(o, positive))).OrderByDescending(r => r.Score).ThenBy(r => r.Index).ToList();
        await ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartArray();
            foreach (var (index, score) in ranks)
            {
                w.WriteStartObject();
                w.WriteNumber("index", index);
                w.WriteNumber("score", (float)score);
                if (returnText) w.WriteString("text", texts[index]);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        });
    }

    private static double Score(JsonNode output, string label) =>
        output is JsonObject o && o["scores"] is JsonObject scores && scores[label] is JsonValue v
            ? v.GetValue<double>()
            : throw new InvalidOperationException($"the classification head's output has no score for label '{label}'");

    public async Task TokenizeAsync(HttpContext context)
    {
        var fields = await ReadAsync(context, TokenizeFields);
        var texts = Inputs(context, fields);
        var special = Optional(fields, "add_special_tokens", ProtocolHeads.Bool) ?? true;
        var sequences = engine.Tokenize(texts, special);
        await ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartArray();
            for (var i = 0; i < sequences.Count; i++)
            {
                var s = sequences[i];
                w.WriteStartArray();
                for (var k = 0; k < s.Length; k++)
                {
                    var isSpecial = s.SpecialTokensMask[k];
                    var (start, end) = s.Offsets[k];
                    w.WriteStartObject();
                    w.WriteNumber("id", s.InputIds[k]);
                    // As TEI: a word piece's text is the slice of the input it covers (no "##"); a special token its name.
                    w.WriteString("text", isSpecial ? s.Tokens[k] : texts[i][start..end]);
                    w.WriteBoolean("special", isSpecial);
                    if (isSpecial)
                    {
                        w.WriteNull("start");
                        w.WriteNull("stop");
                    }
                    else
                    {
                        w.WriteNumber("start", start);
                        w.WriteNumber("stop", end);
                    }
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndArray();
        });
    }

    private async Task<Dictionary<string, JsonElement>> ReadAsync(HttpContext context, IReadOnlyList<string> known)
    {
        var root = await JsonRequestReader.ReadAsync(context, options.MaxRequestBytes);
        var fields = ProtocolHeads.Fields(root, known);
        if (fields.TryGetValue("prompt_name", out var prompt) && prompt.ValueKind != JsonValueKind.Null)
            throw ApiException.BadRequest("prompt_name is not supported: this host has no sentence-transformers prompts; put the prompt in the text", "prompt_name");
        return fields;
    }

    private List<string> Inputs(HttpContext context, Dictionary<string, JsonElement> fields)
    {
        if (!fields.TryGetValue("inputs", out var inputs)) throw ApiException.BadRequest("inputs is required", "inputs");
        var texts = ProtocolHeads.Texts(inputs, "inputs", options.MaxInputsPerRequest);
        RequestInfo.Of(context).Inputs = texts.Count;
        return texts;
    }

    private static string? Model(Dictionary<string, JsonElement> fields) =>
        fields.TryGetValue("model", out var m) ? ProtocolHeads.String(m, "model") : null;

    private static T? Optional<T>(Dictionary<string, JsonElement> fields, string name, Func<JsonElement, string, T?> read) where T : struct =>
        fields.TryGetValue(name, out var value) ? read(value, name) : null;

    /// <summary>TEI's <c>Left</c>/<c>Right</c> (any case) as the embedding head's <c>left</c>/<c>right</c>.</summary>
    private static string? Direction(Dictionary<string, JsonElement> fields)
    {
        if (!fields.TryGetValue("truncation_direction", out var value)) return null;
        return ProtocolHeads.String(value, "truncation_direction")?.ToLowerInvariant() switch
        {
            null => null,
            "left" => "left",
            "right" => "right",
            var other => throw ApiException.BadRequest($"truncation_direction '{other}' is not one of Left, Right", "truncation_direction"),
        };
    }
}
