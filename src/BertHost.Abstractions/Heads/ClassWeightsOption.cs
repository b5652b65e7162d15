using System.Text.Json;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// The <c>class_weights</c> option of the labelled heads: one positive number per label, or <c>"balanced"</c>: weights
/// inversely proportional to the labels' frequencies in the training data, <c>n / (k · n_c)</c> for n labelled targets,
/// k labels and n_c targets of label c (scikit-learn's rule; a label absent from the data gets weight 1).
/// </summary>
public sealed record ClassWeightsOption(IReadOnlyList<double>? Weights, bool Balanced)
{
    public const string BalancedName = "balanced";

    public static ClassWeightsOption Parse(string field, JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.String)
            return v.GetString() == BalancedName
                ? new ClassWeightsOption(null, true)
                : throw new HeadConfigurationException(field, $"{field} must be a list of numbers (one per label) or \"{BalancedName}\", got \"{v.GetString()}\"");
        return new ClassWeightsOption(HeadOptions.PositiveNumbers(field, v, $"a list of numbers (one per label) or \"{BalancedName}\""), false);
    }

    /// <summary>Balanced weights from the count of training targets per label.</summary>
    public static double[] BalancedWeights(IReadOnlyList<long> counts)
    {
        var total = counts.Sum();
        return counts.Select(c => c == 0 ? 1.0 : total / ((double)counts.Count * c)).ToArray();
    }

    /// <summary>The JSON value head.json records: the list, or "balanced".</summary>
    public System.Text.Json.Nodes.JsonNode ToJson() => Balanced
        ? System.Text.Json.Nodes.JsonValue.Create(BalancedName)!
        : new System.Text.Json.Nodes.JsonArray(Weights!.Select(x => (System.Text.Json.Nodes.JsonNode)x).ToArray());
}
