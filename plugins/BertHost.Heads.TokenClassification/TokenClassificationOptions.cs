using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;

namespace BertHost.Heads.TokenClassification;

/// <summary>The tag scheme of the labels: IOB2 ("bio": every entity starts with B-) or IOB1 (B- only between two adjacent entities of one type).</summary>
public enum TagScheme { Bio, Iob1 }

public enum HiddenActivation { Gelu, Relu, Tanh }

/// <summary>
/// The <c>options:</c> of a token-classification head. Every key is optional:
/// <list type="bullet">
/// <item><c>layers</c>: hidden states concatenated for the classifier, counted like Python (0 = embeddings, -1 = last layer); default [-1]</item>
/// <item><c>dropout</c>: before the classifier (and after the hidden layer); default the body's hidden_dropout_prob</item>
/// <item><c>hidden_size</c>: an optional Linear + activation + dropout layer of this size before the classifier</item>
/// <item><c>activation</c>: of the hidden layer: <c>gelu</c> (default) | <c>relu</c> | <c>tanh</c></item>
/// <item><c>stride</c>: tokens shared by consecutive windows of a text longer than <c>max_length</c> (default 16)</item>
/// <item><c>max_length</c>: tokens per window (special tokens included); the body's limit when larger or absent</item>
/// <item><c>scheme</c>: <c>bio</c> (IOB2, default) | <c>iob1</c>: the tag scheme the head predicts; training data in the other scheme is converted when read</item>
/// </list>
/// </summary>
public sealed record TokenClassificationOptions
{
    public const int DefaultStride = 16;

    public static IReadOnlyList<string> Keys { get; } = ["layers", "dropout", "hidden_size", "activation", "stride", "max_length", "scheme", "class_weights"];

    /// <summary>Keys that change what the weights mean: a saved head must be served with the values it was trained with.</summary>
    public static IReadOnlyList<string> StructuralKeys { get; } = ["layers", "hidden_size", "activation", "scheme"];

    /// <summary>Normalised layer indices: negative (-1 = last layer), one per concatenated hidden state, in the given order.</summary>
    public IReadOnlyList<int> Layers { get; init; } = [-1];
    public double? Dropout { get; init; }
    public int? HiddenSize { get; init; }
    public HiddenActivation Activation { get; init; } = HiddenActivation.Gelu;
    public int Stride { get; init; } = DefaultStride;
    public int? MaxLength { get; init; }
    public TagScheme Scheme { get; init; } = TagScheme.Bio;

    /// <summary>Loss weight per tag (a weighted mean over the labelled tokens), or balanced from the training data.</summary>
    public ClassWeightsOption? ClassWeights { get; init; }

    /// <summary>The keys present in the YAML (so saved values fill in the others).</summary>
    public IReadOnlySet<string> Given { get; init; } = new HashSet<string>();

    public static string Name(HiddenActivation a) => a.ToString().ToLowerInvariant();
    public static string Name(TagScheme s) => s == TagScheme.Iob1 ? "iob1" : "bio";

    public static TokenClassificationOptions Parse(JsonElement options, BodyInfo body)
    {
        if (!HeadOptions.Check(options, Keys, "a token-classification head")) return new TokenClassificationOptions();

        var result = new TokenClassificationOptions { Given = HeadOptions.Given(options) };
        foreach (var p in options.EnumerateObject())
        {
            var field = "options." + p.Name;
            var v = p.Value;
            result = p.Name switch
            {
                "layers" => result with { Layers = ParseLayers(field, v, body) },
                "dropout" => result with { Dropout = HeadOptions.Probability(field, v) },
                "hidden_size" => result with { HiddenSize = v.ValueKind == JsonValueKind.Null ? null : HeadOptions.Int(field, v, min: 1) },
                "activation" => result with { Activation = ParseActivation(field, HeadOptions.String(field, v)) },
                "stride" => result with { Stride = HeadOptions.Int(field, v, min: 0) },
                "max_length" => result with { MaxLength = HeadOptions.Int(field, v, min: 3) },
                "scheme" => result with { Scheme = ParseScheme(field, HeadOptions.String(field, v)) },
                "class_weights" => result with { ClassWeights = ClassWeightsOption.Parse(field, v) },
                _ => result,
            };
        }
        return result;
    }

    /// <summary>The options with every key explicit (what head.json records).</summary>
    public JsonObject ToJson(double effectiveDropout)
    {
        var o = new JsonObject
        {
            ["layers"] = new JsonArray(Layers.Select(l => (JsonNode)l).ToArray()),
            ["dropout"] = effectiveDropout,
            ["hidden_size"] = HiddenSize,
            ["activation"] = Name(Activation),
            ["stride"] = Stride,
            ["scheme"] = Name(Scheme),
        };
        if (MaxLength is { } m) o["max_length"] = m;
        if (ClassWeights is { } w) o["class_weights"] = w.ToJson();
        return o;
    }

    internal string ValueOf(string key) => key switch
    {
        "layers" => $"[{string.Join(", ", Layers)}]",
        "hidden_size" => HiddenSize?.ToString(CultureInfo.InvariantCulture) ?? "none",
        "activation" => Name(Activation),
        "scheme" => Name(Scheme),
        _ => "",
    };

    private static IReadOnlyList<int> ParseLayers(string field, JsonElement v, BodyInfo body)
    {
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0)
            throw new HeadConfigurationException(field, $"{field} must be a non-empty list of layer indices (e.g. [-1] or [-1, -2, -3, -4]), got {HeadOptions.Describe(v)}");
        var count = body.NumHiddenLayers + 1;
        var list = new List<int>();
        foreach (var e in v.EnumerateArray())
        {
            var f = $"{field}[{list.Count}]";
            var layer = HeadOptions.Layer(f, e, body);
            var normalised = layer < 0 ? layer : layer - count;
            if (list.Contains(normalised)) throw new HeadConfigurationException(f, $"layer {layer} is listed twice");
            list.Add(normalised);
        }
        return list;
    }

    private static HiddenActivation ParseActivation(string field, string s) => s.ToLowerInvariant() switch
    {
        "gelu" => HiddenActivation.Gelu,
        "relu" => HiddenActivation.Relu,
        "tanh" => HiddenActivation.Tanh,
        _ => throw new HeadConfigurationException(field, $"activation '{s}' is not one of gelu, relu, tanh"),
    };

    internal static TagScheme ParseScheme(string field, string s) => s.ToLowerInvariant() switch
    {
        "bio" or "iob2" => TagScheme.Bio,
        "iob1" => TagScheme.Iob1,
        _ => throw new HeadConfigurationException(field, $"scheme '{s}' is not one of bio, iob1"),
    };
}
