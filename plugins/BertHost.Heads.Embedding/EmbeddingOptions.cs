using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;

namespace BertHost.Heads.Embedding;

/// <summary>
/// The <c>options:</c> of an embedding head, all optional: <c>pooling</c> <c>mean</c> (default) | <c>cls</c> | <c>max</c> |
/// <c>pooler</c>; <c>normalize</c> (default true: unit length, so a dot product is the cosine); <c>dimensions</c> (keep
/// the first N values of the pooled vector, then normalise; default: the body's hidden size); <c>max_length</c>
/// (tokens per input, special tokens included; the body's limit when larger or absent).
/// </summary>
public sealed record EmbeddingOptions
{
    public static IReadOnlyList<string> Keys { get; } = ["pooling", "normalize", "dimensions", "max_length"];

    public PoolingMode Pooling { get; init; } = PoolingMode.Mean;
    public bool Normalize { get; init; } = true;
    public int? Dimensions { get; init; }
    public int? MaxLength { get; init; }

    public static EmbeddingOptions Parse(JsonElement options, BodyInfo body)
    {
        if (!HeadOptions.Check(options, Keys, "an embedding head")) return new EmbeddingOptions();
        var result = new EmbeddingOptions();
        foreach (var p in options.EnumerateObject())
        {
            var field = "options." + p.Name;
            result = p.Name switch
            {
                "pooling" => result with { Pooling = ParsePooling(field, HeadOptions.String(field, p.Value)) },
                "normalize" => result with { Normalize = HeadOptions.Bool(field, p.Value) },
                "dimensions" => result with { Dimensions = ParseDimensions(field, p.Value, body.HiddenSize) },
                "max_length" => result with { MaxLength = HeadOptions.Int(field, p.Value, min: 2) },
                _ => result,
            };
        }
        return result;
    }

    private static int ParseDimensions(string field, JsonElement v, int hidden)
    {
        var dims = HeadOptions.Int(field, v, min: 1);
        return dims <= hidden ? dims : throw new HeadConfigurationException(field, $"dimensions must be at most the body's hidden size {hidden}, got {dims}");
    }

    private static PoolingMode ParsePooling(string field, string s) => s.ToLowerInvariant() switch
    {
        "mean" => PoolingMode.Mean,
        "cls" => PoolingMode.Cls,
        "max" => PoolingMode.Max,
        "pooler" => PoolingMode.Pooler,
        _ => throw new HeadConfigurationException(field, $"pooling '{s}' is not one of mean, cls, max, pooler"),
    };

    public JsonObject ToJson() => new()
    {
        ["pooling"] = Pooling.ToString().ToLowerInvariant(),
        ["normalize"] = Normalize,
        ["dimensions"] = Dimensions,
        ["max_length"] = MaxLength,
    };
}
