using System.Globalization;
using System.Text.Json.Nodes;

namespace BertHost.Core.Lora;

/// <summary>
/// The shape of a LoRA adapter (Hu et al. 2021, as Hugging Face PEFT defines it): for every targeted Linear W [out,in],
/// the pass computes W·x + (alpha/r)·B·A·dropout(x) with A [r,in] and B [out,r]; W stays as it is.
/// </summary>
/// <param name="Rank">r, the inner dimension of the update.</param>
/// <param name="Alpha">lora_alpha; the update is scaled by alpha / r.</param>
/// <param name="Dropout">Dropout on the adapter's input while training (PEFT's lora_dropout); none when serving.</param>
/// <param name="Targets">Module name suffixes as PEFT's <c>target_modules</c> matches them (a module is targeted when
/// its name equals one or ends with "." + one), or the single entry <see cref="AllLinear"/>.</param>
public sealed record LoraSettings(int Rank = 8, double Alpha = 16, double Dropout = 0.1, IReadOnlyList<string>? Targets = null)
{
    /// <summary>Every Linear of the encoder layers (query, key, value, attention.output.dense, intermediate.dense, output.dense); the pooler is left out, as PEFT leaves out the output layer.</summary>
    public const string AllLinear = "all-linear";

    /// <summary>PEFT's default for BERT: query and value of every layer.</summary>
    public static readonly IReadOnlyList<string> DefaultTargets = ["query", "value"];

    public IReadOnlyList<string> TargetModules => Targets is { Count: > 0 } t ? t : DefaultTargets;

    public double Scale => Alpha / Rank;

    public void Validate()
    {
        if (Rank < 1) throw new ArgumentException("lora rank must be at least 1");
        if (Alpha <= 0 || double.IsNaN(Alpha)) throw new ArgumentException("lora alpha must be positive");
        if (Dropout is < 0 or >= 1 || double.IsNaN(Dropout)) throw new ArgumentException("lora dropout must be at least 0 and below 1");
        foreach (var t in TargetModules)
            if (string.IsNullOrWhiteSpace(t)) throw new ArgumentException("lora targets: an empty module name");
        if (TargetModules.Contains(AllLinear) && TargetModules.Count > 1)
            throw new ArgumentException($"lora targets: {AllLinear} stands alone");
    }

    /// <summary>"query,value" or "all-linear" into target names.</summary>
    public static IReadOnlyList<string> ParseTargets(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new ArgumentException("lora targets: give module names (e.g. query,value) or all-linear");
        return parts;
    }

    /// <summary>Whether the body module <paramref name="name"/> (e.g. <c>encoder.layer.0.attention.self.query</c>) is targeted.</summary>
    public bool IsTarget(string name)
    {
        if (!name.StartsWith("encoder.layer.", StringComparison.Ordinal)) return false;
        if (TargetModules.Count == 1 && TargetModules[0] == AllLinear) return true;
        return TargetModules.Any(t => name == t || name.EndsWith("." + t, StringComparison.Ordinal));
    }

    public JsonObject ToJson() => new()
    {
        ["r"] = Rank,
        ["lora_alpha"] = Alpha,
        ["lora_dropout"] = Dropout,
        ["target_modules"] = new JsonArray(TargetModules.Select(t => (JsonNode)t).ToArray()),
    };

    /// <summary>Reads <see cref="ToJson"/>'s form (also the fields of a PEFT adapter_config.json); errors name the field.</summary>
    public static LoraSettings FromJson(JsonObject o, string where)
    {
        int rank = o["r"] is JsonValue r && r.TryGetValue<int>(out var ri) ? ri : throw new FormatException($"{where}: 'r' must be an integer");
        double alpha = o["lora_alpha"] is JsonValue a && TryNumber(a, out var av) ? av : throw new FormatException($"{where}: 'lora_alpha' must be a number");
        double dropout = o["lora_dropout"] is null ? 0 : o["lora_dropout"] is JsonValue d && TryNumber(d, out var dv) ? dv : throw new FormatException($"{where}: 'lora_dropout' must be a number");
        IReadOnlyList<string> targets = o["target_modules"] switch
        {
            JsonArray arr when arr.All(x => x is JsonValue v && v.TryGetValue<string>(out _)) => arr.Select(x => x!.GetValue<string>()).ToList(),
            JsonValue v when v.TryGetValue<string>(out var s) => s == "all-linear" ? [AllLinear] : [s],
            _ => throw new FormatException($"{where}: 'target_modules' must be a list of module names or \"all-linear\""),
        };
        var settings = new LoraSettings(rank, alpha, dropout, targets);
        try
        {
            settings.Validate();
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"{where}: {e.Message}");
        }
        return settings;
    }

    private static bool TryNumber(JsonValue v, out double value)
    {
        if (v.TryGetValue(out value)) return true;
        if (v.TryGetValue<int>(out var i)) { value = i; return true; }
        return false;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"r={Rank} alpha={Alpha} dropout={Dropout} targets={string.Join(",", TargetModules)}");
}
