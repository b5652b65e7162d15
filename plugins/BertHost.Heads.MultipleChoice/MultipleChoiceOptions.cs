using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;

namespace BertHost.Heads.MultipleChoice;

/// <summary>
/// The <c>options:</c> of a multiple-choice head. Every key is optional:
/// <list type="bullet">
/// <item><c>pooling</c>: <c>pooler</c> (default, as BertForMultipleChoice; needs a body with pooler weights) | <c>cls</c> | <c>mean</c></item>
/// <item><c>dropout</c>: before the classifier; default the imported model's classifier_dropout, else the body's hidden_dropout_prob</item>
/// <item><c>max_length</c>: tokens per choice sequence (special tokens included); the body's limit when larger or absent</item>
/// <item><c>max_choices</c>: the most choices one input may have (default 8)</item>
/// <item><c>truncation</c>: <c>longest_first</c> (default, as the SWAG recipe's <c>truncation=True</c>) | <c>only_first</c> (cut only the context)</item>
/// </list>
/// </summary>
public sealed record MultipleChoiceOptions
{
    public const int DefaultMaxChoices = 8;

    public static IReadOnlyList<string> Keys { get; } = ["pooling", "dropout", "max_length", "max_choices", "truncation"];

    /// <summary>Keys that change what the weights mean: a saved head must be served with the values it was trained with.</summary>
    public static IReadOnlyList<string> StructuralKeys { get; } = ["pooling"];

    public PoolingMode Pooling { get; init; } = PoolingMode.Pooler;
    public double? Dropout { get; init; }
    public int? MaxLength { get; init; }
    public int MaxChoices { get; init; } = DefaultMaxChoices;
    public TruncationStrategy Truncation { get; init; } = TruncationStrategy.LongestFirst;

    /// <summary>The keys present in the YAML (so saved values fill in the others).</summary>
    public IReadOnlySet<string> Given { get; init; } = new HashSet<string>();

    public static string Name(PoolingMode m) => m.ToString().ToLowerInvariant();
    public static string Name(TruncationStrategy t) => t == TruncationStrategy.OnlyFirst ? "only_first" : "longest_first";

    /// <summary>Parses an options object; every problem is a <see cref="HeadConfigurationException"/> on <c>options.key</c>.</summary>
    public static MultipleChoiceOptions Parse(JsonElement options)
    {
        if (options.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return new MultipleChoiceOptions();
        if (options.ValueKind != JsonValueKind.Object)
            throw new HeadConfigurationException("options", $"options must be an object, got {Describe(options)}");

        var unknown = options.EnumerateObject().Select(p => p.Name).Where(n => !Keys.Contains(n)).ToList();
        if (unknown.Count > 0)
            throw new HeadConfigurationException($"options.{unknown[0]}",
                $"unknown option{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(u => $"'{u}'"))} for a multiple-choice head (known: {string.Join(", ", Keys)})");

        var result = new MultipleChoiceOptions { Given = options.EnumerateObject().Select(p => p.Name).ToHashSet() };
        foreach (var p in options.EnumerateObject())
        {
            var field = "options." + p.Name;
            var v = p.Value;
            result = p.Name switch
            {
                "pooling" => result with { Pooling = ParsePooling(field, String(field, v)) },
                "dropout" => result with { Dropout = Probability(field, v) },
                "max_length" => result with { MaxLength = Int(field, v, min: 3) },
                "max_choices" => result with { MaxChoices = Int(field, v, min: 2) },
                "truncation" => result with { Truncation = ParseTruncation(field, String(field, v)) },
                _ => result,
            };
        }
        return result;
    }

    /// <summary>The options as an object with every key explicit (what head.json records).</summary>
    public JsonObject ToJson(double effectiveDropout)
    {
        var o = new JsonObject
        {
            ["pooling"] = Name(Pooling),
            ["dropout"] = effectiveDropout,
            ["max_choices"] = MaxChoices,
            ["truncation"] = Name(Truncation),
        };
        if (MaxLength is { } m) o["max_length"] = m;
        return o;
    }

    private static PoolingMode ParsePooling(string field, string s) => s.ToLowerInvariant() switch
    {
        "pooler" => PoolingMode.Pooler,
        "cls" => PoolingMode.Cls,
        "mean" => PoolingMode.Mean,
        _ => throw new HeadConfigurationException(field, $"pooling '{s}' is not one of pooler, cls, mean"),
    };

    private static TruncationStrategy ParseTruncation(string field, string s) => s.ToLowerInvariant() switch
    {
        "longest_first" => TruncationStrategy.LongestFirst,
        "only_first" => TruncationStrategy.OnlyFirst,
        _ => throw new HeadConfigurationException(field, $"truncation '{s}' is not one of longest_first, only_first"),
    };

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
