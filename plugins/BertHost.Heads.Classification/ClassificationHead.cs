using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using static TorchSharp.torch;

namespace BertHost.Heads.Classification;

/// <summary>
/// A text-classification head. Input <c>{"text": "...", "text_pair": "..."}</c> or a bare string; output
/// <c>{"label", "score", "scores": {label: probability}}</c> (+ <c>top</c> with request parameter <c>top_k</c>, and
/// <c>labels</c> above 0.5 for multi_label heads).
/// </summary>
public sealed class ClassificationHead : IHead
{
    private readonly HeadContext _context;
    private readonly ClassificationModule _module;
    private readonly double _dropout;
    private readonly string _weightsKind;

    internal ClassificationHead(HeadContext context, ClassificationOptions options, IReadOnlyList<string> labels, double dropout,
        ClassificationModule module, string weightsKind, string? trainedOn)
    {
        _context = context;
        Options = options;
        Labels = labels;
        _dropout = dropout;
        _module = module;
        _weightsKind = weightsKind;
        TrainedOnFingerprint = trainedOn;
        MaxLength = Math.Min(options.MaxLength ?? int.MaxValue, context.Body.MaxSequenceLength);
        Requirements = new BodyRequirements(
            PooledOutput: options.Pooling == PoolingMode.Pooler,
            HiddenLayers: options.Layer == -1 ? null : [options.Layer]);
        Training = new ClassificationTraining(this);
    }

    public string Name => _context.Name;
    public string Kind => TextClassificationKind.KindName;
    public IReadOnlyList<string> Labels { get; }
    public nn.Module Module => _module;
    public BodyRequirements Requirements { get; }
    public string? TrainedOnFingerprint { get; private set; }
    public IHeadTraining? Training { get; }

    public ClassificationOptions Options { get; }

    /// <summary>Tokens per input, special tokens included.</summary>
    public int MaxLength { get; }

    internal ITextTokenizer Tokenizer => _context.Tokenizer;

    public ScoreFunction DefaultFunction => Options.ProblemType == ProblemType.MultiLabel ? ScoreFunction.Sigmoid : ScoreFunction.Softmax;

    /// <summary>The request parameters Encode reads; the host refuses others.</summary>
    public IReadOnlyCollection<string>? Parameters { get; } = ["top_k", "function_to_apply"];

    public JsonObject Describe() => new()
    {
        ["labels"] = new JsonArray(Labels.Select(l => (JsonNode)l).ToArray()),
        ["options"] = Options.ToJson(_dropout),
        ["max_length"] = MaxLength,
        ["weights"] = _weightsKind,
        ["trained_on"] = TrainedOnFingerprint,
        ["stale"] = TrainedOnFingerprint is not null && TrainedOnFingerprint != _context.Body.Fingerprint,
        ["parameters"] = new JsonArray(Parameters!.Select(p => (JsonNode)p).ToArray()),
    };

    public HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        var (text, pair) = ReadInput(input);
        var state = ReadParameters(parameters);
        if (!_context.TruncateOversized) RefuseIfOversized(text, pair);
        return new HeadFeatures { Sequences = [EncodeText(text, pair)], State = state };
    }

    // The deployment says oversized: refuse — the caller learns the input's length instead of a silently cut answer.
    private void RefuseIfOversized(string text, string? pair)
    {
        var full = _context.Tokenizer.Encode(text, pair, new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate })[0];
        if (full.Length > MaxLength)
            throw new HeadInputException(pair is null ? "text" : "text_pair",
                $"the input is {full.Length} tokens; this head accepts at most {MaxLength} (the deployment refuses oversized inputs instead of truncating)");
    }

    internal EncodedSequence EncodeText(string text, string? pair) =>
        _context.Tokenizer.Encode(text, pair, new EncodeOptions { MaxLength = MaxLength, Truncation = TruncationStrategy.LongestFirst })[0];

    private static (string Text, string? Pair) ReadInput(JsonElement input)
    {
        switch (input.ValueKind)
        {
            case JsonValueKind.String:
                return (NonEmpty("text", input.GetString()!), null);
            case JsonValueKind.Object:
                string? text = null, pair = null;
                var sawText = false;
                foreach (var p in input.EnumerateObject())
                {
                    switch (p.Name)
                    {
                        case "text":
                            sawText = true;
                            text = p.Value.ValueKind == JsonValueKind.String
                                ? NonEmpty("text", p.Value.GetString()!)
                                : throw new HeadInputException("text", $"text must be a string, got {HeadOptions.Describe(p.Value)}");
                            break;
                        case "text_pair":
                            if (p.Value.ValueKind == JsonValueKind.Null) break;
                            pair = p.Value.ValueKind == JsonValueKind.String
                                ? NonEmpty("text_pair", p.Value.GetString()!)
                                : throw new HeadInputException("text_pair", $"text_pair must be a string, got {HeadOptions.Describe(p.Value)}");
                            break;
                        default:
                            throw new HeadInputException(p.Name, $"unknown input field '{p.Name}' (a text-classification input has text and optionally text_pair)");
                    }
                }
                if (!sawText) throw new HeadInputException("text", "text is missing: send {\"text\": \"...\"} (optionally with \"text_pair\") or a string");
                return (text!, pair);
            default:
                throw new HeadInputException("text", $"the input must be a string or an object with text (and optionally text_pair), got {HeadOptions.Describe(input)}");
        }
    }

    private static string NonEmpty(string field, string value) =>
        string.IsNullOrWhiteSpace(value) ? throw new HeadInputException(field, $"{field} is empty") : value;

    private ClassificationState ReadParameters(JsonElement parameters)
    {
        if (parameters.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return new ClassificationState();
        if (parameters.ValueKind != JsonValueKind.Object)
            throw new HeadInputException("parameters", $"parameters must be an object, got {HeadOptions.Describe(parameters)}");
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

    public Tensor Forward(BodyOutput body, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        var pooled = Options.Pooling == PoolingMode.Attention
            ? _module.AttentionPool(Options.Layer == -1 ? body.LastHiddenState : body.HiddenState(Options.Layer), body.AttentionMask)
            : Pooling.Pool(body, Options.Pooling, Options.Layer);
        if (pooled.shape[0] != batch.RowCount)
            throw new ArgumentException($"the body output has {pooled.shape[0]} rows but the batch has {batch.RowCount}");
        return _module.call(pooled).MoveToOuterDisposeScope();
    }

    public IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch)
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

    public void Save(string folder, HeadSaveInfo info)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(info);
        HeadWeights.Save(_context, folder, _module, new HeadManifest(Kind, Labels, Options.ToJson(_dropout), info.BodyFingerprint, info.Metrics, DateTimeOffset.UtcNow));
        TrainedOnFingerprint = info.BodyFingerprint;
    }

    public void Dispose() => _module.Dispose();
}
