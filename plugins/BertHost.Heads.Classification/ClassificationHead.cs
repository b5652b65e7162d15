using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;
using BertHost.Abstractions.Text;
using static TorchSharp.torch;

namespace BertHost.Heads.Classification;

/// <summary>
/// A text-classification head. Input <c>{"text": "...", "text_pair": "..."}</c> or a bare string; output
/// <c>{"label", "score", "scores": {label: probability}}</c> (+ <c>top</c> with request parameter <c>top_k</c>, and
/// <c>labels</c> above 0.5 for multi_label heads).
/// </summary>
public sealed class ClassificationHead : TaskHead<ClassificationOptions, ClassificationModule>
{
    private static readonly string[] InputFields = ["text", "text_pair"];

    private readonly double _dropout;

    internal ClassificationHead(HeadContext context, ClassificationOptions options, IReadOnlyList<string> labels, double dropout,
        ClassificationModule module, WeightsOrigin origin)
        : base(context, TextClassificationKind.KindName, options, module, origin, options.MaxLength, labels)
    {
        _dropout = dropout;
        Requirements = new BodyRequirements(
            PooledOutput: options.Pooling == PoolingMode.Pooler,
            HiddenLayers: options.Layer == -1 ? null : [options.Layer]);
        Training = new ClassificationTraining(this);
    }

    public ScoreFunction DefaultFunction => Options.ProblemType == ProblemType.MultiLabel ? ScoreFunction.Sigmoid : ScoreFunction.Softmax;

    /// <summary>The request parameters Encode reads; the host refuses others.</summary>
    public override IReadOnlyCollection<string>? Parameters { get; } = ["top_k", "function_to_apply"];

    protected override JsonObject OptionsJson() => Options.ToJson(_dropout);

    public override HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        var fields = HeadInput.Fields(input, InputFields, "a string or an object with text (and optionally text_pair)",
            "a text-classification input has text and optionally text_pair", bareString: "text");
        var text = HeadInput.Required(fields, "text", "text is missing: send {\"text\": \"...\"} (optionally with \"text_pair\") or a string");
        var pair = HeadInput.Optional(fields, "text_pair");
        var state = ReadParameters(parameters);
        return new HeadFeatures { Sequences = [EncodeOrRefuse(text, pair, pair is null ? "text" : "text_pair")], State = state };
    }

    internal EncodedSequence EncodeText(string text, string? pair) => EncodeTruncated(text, pair);

    private ClassificationState ReadParameters(JsonElement parameters)
    {
        if (!HeadInput.CheckParameters(parameters)) return new ClassificationState();
        int? topK = null;
        ScoreFunction? function = null;
        if (parameters.TryGetProperty("top_k", out var k) && k.ValueKind != JsonValueKind.Null)
        {
            if (k.ValueKind != JsonValueKind.Number || !k.TryGetInt32(out var kk) || kk < 1)
                throw new HeadInputException("parameters.top_k", $"top_k must be a positive integer, got {HeadOptions.Describe(k)}");
            topK = Math.Min(kk, Labels.Count);
        }
        if (parameters.TryGetProperty("function_to_apply", out var f) && f.ValueKind != JsonValueKind.Null)
        {
            function = f.ValueKind == JsonValueKind.String
                ? f.GetString()!.ToLowerInvariant() switch
                {
                    "softmax" => ScoreFunction.Softmax,
                    "sigmoid" => ScoreFunction.Sigmoid,
                    "none" => ScoreFunction.None,
                    var other => throw new HeadInputException("parameters.function_to_apply", $"function_to_apply '{other}' is not one of softmax, sigmoid, none"),
                }
                : throw new HeadInputException("parameters.function_to_apply", $"function_to_apply must be a string, got {HeadOptions.Describe(f)}");
        }
        return new ClassificationState { TopK = topK, Function = function };
    }

    public override Tensor Forward(BodyOutput body, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        var pooled = Options.Pooling == PoolingMode.Attention
            ? Module.AttentionPool(Options.Layer == -1 ? body.LastHiddenState : body.HiddenState(Options.Layer), body.AttentionMask)
            : Pooling.Pool(body, Options.Pooling, Options.Layer);
        if (pooled.shape[0] != batch.RowCount)
            throw new ArgumentException($"the body output has {pooled.shape[0]} rows but the batch has {batch.RowCount}");
        return Module.call(pooled).MoveToOuterDisposeScope();
    }

    public override IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch)
    {
        var n = Labels.Count;
        float[] values;
        using (var cpu = logits.detach().to(ScalarType.Float32, CPU).contiguous()) values = cpu.data<float>().ToArray();
        if (values.Length != batch.RowCount * n)
            throw new ArgumentException($"logits have {values.Length} values, expected {batch.RowCount} rows x {n} labels");

        var results = new List<JsonNode>(batch.Items.Count);
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var state = batch.Items[i].State as ClassificationState;
            var function = state?.Function ?? DefaultFunction;
            var scores = Scores(values.AsSpan(batch.RowStarts[i] * n, n), function);
            var best = 0;
            for (var j = 1; j < n; j++) if (scores[j] > scores[best]) best = j;

            var result = new JsonObject
            {
                ["label"] = Labels[best],
                ["score"] = scores[best],
                ["scores"] = new JsonObject(Labels.Select((l, j) => KeyValuePair.Create(l, (JsonNode?)scores[j]))),
            };
            if (Options.ProblemType == ProblemType.MultiLabel && function == ScoreFunction.Sigmoid)
                result["labels"] = new JsonArray(Labels.Where((_, j) => scores[j] >= 0.5).Select(l => (JsonNode)l).ToArray());
            if (state?.TopK is { } k)
                result["top"] = new JsonArray(Enumerable.Range(0, n).OrderByDescending(j => scores[j]).ThenBy(j => j).Take(k)
                    .Select(j => (JsonNode)new JsonObject { ["label"] = Labels[j], ["score"] = scores[j] }).ToArray());
            results.Add(result);
        }
        return results;
    }

    /// <summary>Softmax (max-subtracted), sigmoid or the raw logits, in double precision.</summary>
    public static double[] Scores(ReadOnlySpan<float> logits, ScoreFunction function)
    {
        var s = new double[logits.Length];
        switch (function)
        {
            case ScoreFunction.Softmax:
                return HeadMath.Softmax(logits);
            case ScoreFunction.Sigmoid:
                for (var j = 0; j < s.Length; j++) s[j] = HeadMath.Sigmoid(logits[j]);
                break;
            default:
                for (var j = 0; j < s.Length; j++) s[j] = logits[j];
                break;
        }
        return s;
    }
}
