using BertHost.Abstractions;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;

namespace BertHost.Heads.Classification;

/// <summary>How the sequence becomes one vector before the classifier.</summary>

public enum ProblemType { SingleLabel, MultiLabel }

public enum HiddenActivation { Tanh, Gelu, Relu }

/// <summary>
/// The <c>options:</c> of a text-classification head. Every key is optional:
/// <list type="bullet">
/// <item><c>pooling</c>: <c>pooler</c> (default, as BertForSequenceClassification; needs a body with pooler weights) | <c>cls</c> | <c>mean</c> | <c>max</c></item>
/// <item><c>dropout</c>: before the classifier (and after each hidden layer); default the body's hidden_dropout_prob</item>
/// <item><c>hidden_layers</c>: sizes of optional Linear + activation + dropout layers before the classifier (default none)</item>
/// <item><c>activation</c>: of the hidden layers: <c>tanh</c> (default, as the BERT pooler and RoBERTa's classification head) | <c>gelu</c> | <c>relu</c></item>
/// <item><c>problem_type</c>: <c>single_label</c> (default; softmax, cross-entropy) | <c>multi_label</c> (sigmoid, BCE-with-logits)</item>
/// <item><c>max_length</c>: tokens per input (special tokens included); the body's limit when larger or absent</item>
/// <item><c>layer</c>: the hidden state to pool, counted like Python (0 = embeddings, -1 = last layer, the default)</item>
/// <item><c>class_weights</c>: one positive weight per label for the loss</item>
/// </list>
/// </summary>
public sealed record ClassificationOptions
{
    public static IReadOnlyList<string> Keys { get; } =
        ["pooling", "dropout", "hidden_layers", "activation", "problem_type", "max_length", "layer", "class_weights"];

    /// <summary>Keys that change what the weights mean: a saved head must be served with the values it was trained with.</summary>
    public static IReadOnlyList<string> StructuralKeys { get; } = ["pooling", "hidden_layers", "activation", "problem_type", "layer"];

    public PoolingMode Pooling { get; init; } = PoolingMode.Pooler;
    public double? Dropout { get; init; }
    public IReadOnlyList<int> HiddenLayers { get; init; } = [];
    public HiddenActivation Activation { get; init; } = HiddenActivation.Tanh;
    public ProblemType ProblemType { get; init; } = ProblemType.SingleLabel;
    public int? MaxLength { get; init; }
    public int Layer { get; init; } = -1;
    public IReadOnlyList<double>? ClassWeights { get; init; }

    /// <summary>The keys present in the YAML (so saved values fill in the others).</summary>
    public IReadOnlySet<string> Given { get; init; } = new HashSet<string>();

    public static string Name(PoolingMode m) => m.ToString().ToLowerInvariant();
    public static string Name(HiddenActivation a) => a.ToString().ToLowerInvariant();
    public static string Name(ProblemType p) => p == ProblemType.MultiLabel ? "multi_label" : "single_label";

    /// <summary>Parses an options object; every problem is a <see cref="HeadConfigurationException"/> on <c>options.key</c>.</summary>
    public static ClassificationOptions Parse(JsonElement options, BodyInfo body)
    {
        if (options.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return new ClassificationOptions();
        if (options.ValueKind != JsonValueKind.Object)
            throw new HeadConfigurationException("options", $"options must be an object, got {options.ValueKind.ToString().ToLowerInvariant()}");

        var unknown = options.EnumerateObject().Select(p => p.Name).Where(n => !Keys.Contains(n)).ToList();
        if (unknown.Count > 0)
            throw new HeadConfigurationException($"options.{unknown[0]}",
                $"unknown option{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(u => $"'{u}'"))} for a text-classification head (known: {string.Join(", ", Keys)})");

        var result = new ClassificationOptions { Given = options.EnumerateObject().Select(p => p.Name).ToHashSet() };
        foreach (var p in options.EnumerateObject())
        {
            var field = "options." + p.Name;
            var v = p.Value;
            result = p.Name switch
            {
                "pooling" => result with { Pooling = ParsePooling(field, String(field, v)) },
                "dropout" => result with { Dropout = Probability(field, v) },
                "hidden_layers" => result with { HiddenLayers = PositiveInts(field, v) },
                "activation" => result with { Activation = ParseActivation(field, String(field, v)) },
                "problem_type" => result with { ProblemType = ParseProblemType(field, String(field, v)) },
                "max_length" => result with { MaxLength = Int(field, v, min: 2) },
                "layer" => result with { Layer = ParseLayer(field, v, body) },
                "class_weights" => result with { ClassWeights = PositiveDoubles(field, v) },
                _ => result,
            };
        }
        if (result.Layer != -1 && result.Pooling == PoolingMode.Pooler && result.Given.Contains("layer"))
            throw new HeadConfigurationException("options.layer",
                $"layer {result.Layer} cannot be used with pooling 'pooler' (the pooler reads the last layer); choose pooling cls, mean or max");
        return result;
    }

    /// <summary>The options as an object with every key explicit (what head.json records).</summary>
    public JsonObject ToJson(double effectiveDropout)
    {
        var o = new JsonObject
        {
            ["pooling"] = Name(Pooling),
            ["dropout"] = effectiveDropout,
            ["hidden_layers"] = new JsonArray(HiddenLayers.Select(h => (JsonNode)h).ToArray()),
            ["activation"] = Name(Activation),
            ["problem_type"] = Name(ProblemType),
            ["layer"] = Layer,
        };
        if (MaxLength is { } m) o["max_length"] = m;
        if (ClassWeights is { } w) o["class_weights"] = new JsonArray(w.Select(x => (JsonNode)x).ToArray());
        return o;
    }

    internal static PoolingMode ParsePooling(string field, string s) => s.ToLowerInvariant() switch
    {
        "pooler" => PoolingMode.Pooler,
        "cls" => PoolingMode.Cls,
        "mean" => PoolingMode.Mean,
        "max" => PoolingMode.Max,
        _ => throw new HeadConfigurationException(field, $"pooling '{s}' is not one of pooler, cls, mean, max"),
    };

    private static HiddenActivation ParseActivation(string field, string s) => s.ToLowerInvariant() switch
    {
        "tanh" => HiddenActivation.Tanh,
        "gelu" => HiddenActivation.Gelu,
        "relu" => HiddenActivation.Relu,
        _ => throw new HeadConfigurationException(field, $"activation '{s}' is not one of tanh, gelu, relu"),
    };

    internal static ProblemType ParseProblemType(string field, string s) => s.ToLowerInvariant() switch
    {
        "single_label" or "single_label_classification" => ProblemType.SingleLabel,
        "multi_label" or "multi_label_classification" => ProblemType.MultiLabel,
        _ => throw new HeadConfigurationException(field, $"problem_type '{s}' is not one of single_label, multi_label"),
    };

    private static int ParseLayer(string field, JsonElement v, BodyInfo body)
    {
        var layer = Int(field, v, min: int.MinValue);
        var count = body.NumHiddenLayers + 1;
        if (layer < -count || layer >= count)
            throw new HeadConfigurationException(field,
                $"layer {layer} does not exist: the body has {count} hidden states (0 = embeddings .. {body.NumHiddenLayers} = last layer, or -1 .. -{count})");
        var index = layer < 0 ? count + layer : layer;
        return index == count - 1 ? -1 : index;   // the last layer is always -1: no extra hidden states needed
    }

    private static string String(string field, JsonElement v) =>
        v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new HeadConfigurationException(field, $"{field} must be a string, got {Describe(v)}");

    private static int Int(string field, JsonElement v, int min)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var i))
            throw new HeadConfigurationException(field, $"{field} must be an integer, got {Describe(v)}");
        if (i < min) throw new HeadConfigurationException(field, $"{field} must be at least {min}, got {i}");
        return i;
    }

    private static double Probability(string field, JsonElement v)
    {
        if (v.ValueKind != JsonValueKind.Number) throw new HeadConfigurationException(field, $"{field} must be a number, got {Describe(v)}");
        var d = v.GetDouble();
        if (d is < 0 or >= 1) throw new HeadConfigurationException(field, $"{field} must be in [0, 1), got {d}");
        return d;
    }

    private static IReadOnlyList<int> PositiveInts(string field, JsonElement v)
    {
        if (v.ValueKind != JsonValueKind.Array) throw new HeadConfigurationException(field, $"{field} must be a list of layer sizes, got {Describe(v)}");
        var list = new List<int>();
        foreach (var e in v.EnumerateArray()) list.Add(Int($"{field}[{list.Count}]", e, min: 1));
        return list;
    }

    private static IReadOnlyList<double> PositiveDoubles(string field, JsonElement v)
    {
        if (v.ValueKind != JsonValueKind.Array) throw new HeadConfigurationException(field, $"{field} must be a list of numbers (one per label), got {Describe(v)}");
        var list = new List<double>();
        foreach (var e in v.EnumerateArray())
        {
            var f = $"{field}[{list.Count}]";
            if (e.ValueKind != JsonValueKind.Number) throw new HeadConfigurationException(f, $"{f} must be a number, got {Describe(e)}");
            var d = e.GetDouble();
            if (!(d > 0) || double.IsInfinity(d)) throw new HeadConfigurationException(f, $"{f} must be a positive number, got {d}");
            list.Add(d);
        }
        return list;
    }

    internal static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{v.GetString()}\"",
        JsonValueKind.Number => $"the number {v.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => v.GetRawText(),
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        _ => v.ValueKind.ToString(),
    };
}
