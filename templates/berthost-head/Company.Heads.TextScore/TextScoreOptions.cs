using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;

namespace Company.Heads.TextScore;

/// <summary>
/// The head's <c>options:</c>, all optional: <c>pooling</c> (mean, the default | cls | max | pooler), <c>dropout</c>
/// (before the output layer, default 0.1) and <c>max_length</c> (tokens per input; the body's limit when larger).
/// </summary>
public sealed record TextScoreOptions
{
    public static IReadOnlyList<string> Keys { get; } = ["pooling", "dropout", "max_length"];

    public PoolingMode Pooling { get; init; } = PoolingMode.Mean;
    public double Dropout { get; init; } = 0.1;
    public int? MaxLength { get; init; }

    /// <summary>Every problem is a <see cref="HeadConfigurationException"/> naming <c>options.key</c>.</summary>
    public static TextScoreOptions Parse(JsonElement options)
    {
        var result = new TextScoreOptions();
        if (!HeadOptions.Check(options, Keys, "a text-score head")) return result;
        foreach (var p in options.EnumerateObject())
        {
            var field = "options." + p.Name;
            result = p.Name switch
            {
                "pooling" => result with { Pooling = ReadPooling(field, HeadOptions.String(field, p.Value)) },
                "dropout" => result with { Dropout = HeadOptions.Probability(field, p.Value) },
                _ => result with { MaxLength = HeadOptions.Int(field, p.Value, min: 2) },
            };
        }
        return result;
    }

    private static PoolingMode ReadPooling(string field, string value)
    {
        var mode = PoolingMode.None;
        try
        {
            mode = BertHost.Abstractions.Pooling.Parse(value);
        }
        catch (ArgumentException) { }   // reported below, on the field
        return mode != PoolingMode.None ? mode
            : throw new HeadConfigurationException(field, $"pooling '{value}' is not one of mean, cls, max, pooler");
    }

    /// <summary>What head.json records (and reads back with <see cref="Parse"/>) and GET /v1/heads/{name} shows.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject { ["pooling"] = Pooling.ToString().ToLowerInvariant(), ["dropout"] = Dropout };
        if (MaxLength is { } max) o["max_length"] = max;   // absent = the body's limit (null would not parse back)
        return o;
    }
}
