using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;

namespace BertHost.Heads.MultipleChoice;

/// <summary>
/// The <c>options:</c> of a multiple-choice head. Every key is optional:
/// <list type="bullet">
/// <item><c>pooling</c>: <c>pooler</c> (default, as BertForMultipleChoice; needs a body with pooler weights) | <c>cls</c> | <c>mean</c> | <c>attention</c> (a learned masked-softmax weighting of the tokens, <see cref="AttentionPooling"/>)</item>
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
        if (!HeadOptions.Check(options, Keys, "a multiple-choice head")) return new MultipleChoiceOptions();

        var result = new MultipleChoiceOptions { Given = HeadOptions.Given(options) };
        foreach (var p in options.EnumerateObject())
        {
            var field = "options." + p.Name;
            var v = p.Value;
            result = p.Name switch
            {
                "pooling" => result with { Pooling = ParsePooling(field, HeadOptions.String(field, v)) },
                "dropout" => result with { Dropout = HeadOptions.Probability(field, v) },
                "max_length" => result with { MaxLength = HeadOptions.Int(field, v, min: 3) },
                "max_choices" => result with { MaxChoices = HeadOptions.Int(field, v, min: 2) },
                "truncation" => result with { Truncation = ParseTruncation(field, HeadOptions.String(field, v)) },
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
        "attention" => PoolingMode.Attention,
        _ => throw new HeadConfigurationException(field, $"pooling '{s}' is not one of pooler, cls, mean, attention"),
    };

    private static TruncationStrategy ParseTruncation(string field, string s) => s.ToLowerInvariant() switch
    {
        "longest_first" => TruncationStrategy.LongestFirst,
        "only_first" => TruncationStrategy.OnlyFirst,
        _ => throw new HeadConfigurationException(field, $"truncation '{s}' is not one of longest_first, only_first"),
    };
}
