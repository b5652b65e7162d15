using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Core.Serving;

namespace BertHost.Api.Protocols;

/// <summary>A tensor of the Open Inference Protocol: name, datatype, shape (-1: any size) and, in answers, its data.</summary>
internal sealed record TensorSpec(string Name, string Datatype, long[] Shape);

/// <summary>
/// How each head kind looks to a KServe/Triton client: the BYTES inputs it reads (named after the fields of its JSON
/// input) and the typed outputs made from its JSON output. A kind not listed here reads <c>text</c> and answers
/// <c>output</c>: each input's JSON answer as a BYTES string.
/// </summary>
internal static class KServeTensors
{
    public const string Bytes = "BYTES", Fp32 = "FP32", Int64 = "INT64";

    /// <summary>Inputs whose rows are lists (one row: several strings) even when a row has one element.</summary>
    public static readonly string[] ListInputs = ["choices", "tokens"];

    public static IReadOnlyList<TensorSpec> Inputs(string kind) => kind switch
    {
        "text-classification" => [new("text", Bytes, [-1]), new("text_pair", Bytes, [-1])],
        "embedding" => [new("text", Bytes, [-1])],
        "token-classification" => [new("text", Bytes, [-1]), new("tokens", Bytes, [-1, -1])],
        "question-answering" => [new("question", Bytes, [-1]), new("context", Bytes, [-1])],
        "multiple-choice" => [new("context", Bytes, [-1]), new("question", Bytes, [-1]), new("choices", Bytes, [-1, -1])],
        _ => [new("text", Bytes, [-1])],
    };

    public static IReadOnlyList<TensorSpec> Outputs(HeadStatus head) => head.Kind switch
    {
        "text-classification" => [new("label", Bytes, [-1]), new("scores", Fp32, [-1, head.Labels.Count])],
        "embedding" => [new("embedding", Fp32, [-1, head.Details?["dimensions"]?.GetValue<int>() ?? -1])],
        "token-classification" => [new("entities", Bytes, [-1])],
        "question-answering" => [new("answer", Bytes, [-1]), new("score", Fp32, [-1]), new("start", Int64, [-1]), new("end", Int64, [-1])],
        "multiple-choice" => [new("choice", Int64, [-1]), new("label", Bytes, [-1]), new("probabilities", Fp32, [-1, -1])],
        _ => [new("output", Bytes, [-1])],
    };

    /// <summary>The named output's tensor over every input's JSON answer; null when the answers do not fit it (e.g. QA with top_k).</summary>
    public static (long[] Shape, JsonArray Data)? Output(HeadStatus head, string name, IReadOnlyList<JsonNode> outputs)
    {
        var n = outputs.Count;
        switch (head.Kind, name)
        {
            case ("text-classification", "label"):
            case ("multiple-choice", "label"):
            case ("question-answering", "answer"):
                return Column(outputs, name == "answer" ? "answer" : "label", v => JsonValue.Create(v.Deserialize<string>()));
            case ("question-answering", "score"):
                return Column(outputs, "score", v => JsonValue.Create(v.Deserialize<float>()));
            case ("question-answering", "start"):
            case ("question-answering", "end"):
            case ("multiple-choice", "choice"):
                return Column(outputs, name, v => JsonValue.Create(v.Deserialize<long>()));
            case ("text-classification", "scores"):
            {
                var data = new JsonArray();
                foreach (var output in outputs)
                {
                    if (output is not JsonObject { } o || o["scores"] is not JsonObject scores) return null;
                    foreach (var label in head.Labels) data.Add(scores[label]!.Deserialize<float>());
                }
                return ([n, head.Labels.Count], data);
            }
            case ("multiple-choice", "probabilities"):
            case ("embedding", "embedding"):
            {
                var key = name;
                var rows = outputs.Select(o => (o as JsonObject)?[key] as JsonArray).ToList();
                if (rows.Any(r => r is null) || rows.Select(r => r!.Count).Distinct().Count() != 1) return null;
                var data = new JsonArray();
                foreach (var row in rows)
                    foreach (var v in row!) data.Add(v!.Deserialize<float>());
                return ([n, rows[0]!.Count], data);
            }
            case ("token-classification", "entities"):
            case (_, "output"):
                return ([n], new JsonArray(outputs.Select(o => (JsonNode)JsonValue.Create(o.ToJsonString())!).ToArray()));
            default:
                return null;
        }
    }

    private static (long[] Shape, JsonArray Data)? Column(IReadOnlyList<JsonNode> outputs, string key, Func<JsonValue, JsonNode?> convert)
    {
        var data = new JsonArray();
        foreach (var output in outputs)
        {
            if (output is not JsonObject o || o[key] is not JsonValue v) return null;
            data.Add(convert(v));
        }
        return ([outputs.Count], data);
    }

    /// <summary>The request's BYTES tensors as one JSON input object per row (field = tensor name).</summary>
    public static List<JsonElement> Rows(IReadOnlyList<(string Name, long[] Shape, List<string> Data)> tensors)
    {
        var n = (int)tensors[0].Shape[0];
        var rows = new List<JsonElement>(n);
        for (var i = 0; i < n; i++)
        {
            var row = new JsonObject();
            foreach (var (name, shape, data) in tensors)
            {
                var width = data.Count / n;
                var cells = data.GetRange(i * width, width);
                row[name] = width == 1 && !ListInputs.Contains(name)
                    ? JsonValue.Create(cells[0])
                    : new JsonArray(cells.Select(c => (JsonNode)JsonValue.Create(c)!).ToArray());
            }
            rows.Add(JsonSerializer.SerializeToElement(row));
        }
        return rows;
    }
}
