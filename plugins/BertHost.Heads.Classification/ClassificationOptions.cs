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
/// <item><c>pooling</c>: <c>pooler</c> (default, as BertForSequenceClassification; needs a body with pooler weights) | <c>cls</c> | <c>mean</c> | <c>max</c> | <c>attention</c> (a learned masked-softmax weighting of the tokens, <see cref="AttentionPooling"/>)</item>
/// <item><c>dropout</c>: before the classifier (and after each hidden layer); default the body's hidden_dropout_prob</item>
/// <item><c>hidden_layers</c>: sizes of optional Linear + activation + dropout layers before the classifier (default none)</item>
/// <item><c>activation</c>: of the hidden layers: <c>tanh</c> (default, as the BERT pooler and RoBERTa's classification head) | <c>gelu</c> | <c>relu</c></item>
/// <item><c>problem_type</c>: <c>single_label</c> (default; softmax, cross-entropy) | <c>multi_label</c> (sigmoid, BCE-with-logits)</item>
/// <item><c>max_length</c>: tokens per input (special tokens included); the body's limit when larger or absent</item>
/// <item><c>layer</c>: the hidden state to pool, counted like Python (0 = embeddings, -1 = last layer, the default)</item>
/// <item><c>class_weights</c>: one positive weight per label for the loss, or "balanced" (from the training data; single_label)</item>
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
    public ClassWeightsOption? ClassWeights { get; init; }

    /// <summary>The keys present in the YAML (so saved values fill in the others).</summary>
    public IReadOnlySet<string> Given { get; init; } = new HashSet<string>();

    public static string Name(PoolingMode m) => m.ToString().ToLowerInvariant();
    public static string Name(HiddenActivation a) => a.ToString().ToLowerInvariant();
    public static string Name(ProblemType p) => p == ProblemType.MultiLabel ? "multi_label" : "single_label";

    /// <summary>Parses an options object; every problem is a <see cref="HeadConfigurationException"/> on <c>options.key</c>.</summary>
    public static ClassificationOptions Parse(JsonElement options, BodyInfo body)
    {
        if (!HeadOptions.Check(options, Keys, "a text-classification head", HeadOptions.KindName)) return new ClassificationOptions();

        var result = new ClassificationOptions { Given = HeadOptions.Given(options) };
        foreach (var p in options.EnumerateObject())
        {
            var field = "options." + p.Name;
            var v = p.Value;
            result = p.Name switch
            {
                "pooling" => result with { Pooling = ParsePooling(field, HeadOptions.String(field, v)) },
                "dropout" => result with { Dropout = HeadOptions.Probability(field, v) },
                "hidden_layers" => result with { HiddenLayers = HeadOptions.Ints(field, v, min: 1, "a list of layer sizes") },
                "activation" => result with { Activation = ParseActivation(field, HeadOptions.String(field, v)) },
                "problem_type" => result with { ProblemType = ParseProblemType(field, HeadOptions.String(field, v)) },
                "max_length" => result with { MaxLength = HeadOptions.Int(field, v, min: 2) },
                "layer" => result with { Layer = ParseLayer(field, v, body) },
                "class_weights" => result with { ClassWeights = ClassWeightsOption.Parse(field, v) },
                _ => result,
            };
        }
        if (result.Layer != -1 && result.Pooling == PoolingMode.Pooler && result.Given.Contains("layer"))
            throw new HeadConfigurationException("options.layer",
                $"layer {result.Layer} cannot be used with pooling 'pooler' (the pooler reads the last layer); choose pooling cls, mean, max or attention");
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
        if (ClassWeights is { } w) o["class_weights"] = w.ToJson();
        return o;
    }

    internal static PoolingMode ParsePooling(string field, string s) => s.ToLowerInvariant() switch
    {
        "pooler" => PoolingMode.Pooler,
        "cls" => PoolingMode.Cls,
        "mean" => PoolingMode.Mean,
        "max" => PoolingMode.Max,
        "attention" => PoolingMode.Attention,
        _ => throw new HeadConfigurationException(field, $"pooling '{s}' is not one of pooler, cls, mean, max, attention"),
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
        var layer = HeadOptions.Layer(field, v, body);
        var count = body.NumHiddenLayers + 1;
        var index = layer < 0 ? count + layer : layer;
        return index == count - 1 ? -1 : index;   // the last layer is always -1: no extra hidden states needed
    }
}
