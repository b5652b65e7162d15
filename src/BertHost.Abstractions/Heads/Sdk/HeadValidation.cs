using System.Text.Json;
using System.Text.Json.Nodes;

namespace BertHost.Abstractions.Heads.Sdk;

/// <summary>
/// Helpers for <see cref="IHeadKind.Validate"/>: reporting every problem of a head's configuration from parsers that
/// stop at the first one.
/// </summary>
public static class HeadValidation
{
    /// <summary>
    /// Every problem of an <c>options:</c> object. Unknown keys are reported one by one, with the closest known key
    /// ("did you mean"); then <paramref name="parse"/> runs on the known keys, and each time it fails on
    /// <c>options.key</c> that key is reported and left out before it runs again, so one wrong value does not hide the
    /// next (a check between two keys is reported on the key the parser names).
    /// </summary>
    /// <param name="headDescription">How messages name the head, e.g. <c>a text-classification head</c>.</param>
    /// <param name="parsed">The options parsed from the keys without problems (null when even those do not parse).</param>
    public static List<HeadConfigurationException> Options<T>(JsonElement options, IReadOnlyList<string> known, string headDescription,
        Func<JsonElement, T> parse, out T? parsed) where T : class
    {
        ArgumentNullException.ThrowIfNull(known);
        ArgumentNullException.ThrowIfNull(parse);
        var problems = new List<HeadConfigurationException>();
        parsed = null;
        if (options.ValueKind == JsonValueKind.Object)
        {
            var kept = new JsonObject();
            foreach (var p in options.EnumerateObject())
            {
                if (known.Contains(p.Name)) kept[p.Name] = JsonNode.Parse(p.Value.GetRawText());
                else problems.Add(UnknownOption(p.Name, known, headDescription));
            }
            // Each round either parses or drops one key: at most one round per key, plus the last.
            for (var round = 0; round <= known.Count; round++)
            {
                try
                {
                    parsed = parse(JsonSerializer.SerializeToElement(kept));
                    break;
                }
                catch (HeadConfigurationException e)
                {
                    problems.Add(e);
                    var key = KeyOf(e.Field);
                    if (key is null || !kept.Remove(key)) break;   // a problem not tied to one key: nothing more to learn
                }
            }
            return problems;
        }
        try
        {
            parsed = parse(options);   // absent or null: the defaults; anything else: the parser's "must be an object"
        }
        catch (HeadConfigurationException e)
        {
            problems.Add(e);
        }
        return problems;
    }

    /// <summary>"unknown option 'poling' for a text-classification head (did you mean 'pooling'?; known: ...)" on <c>options.poling</c>.</summary>
    public static HeadConfigurationException UnknownOption(string key, IReadOnlyList<string> known, string headDescription)
    {
        ArgumentNullException.ThrowIfNull(known);
        var suggestion = Suggestions.Closest(key, known);
        return new HeadConfigurationException($"options.{key}",
            $"unknown option '{key}' for {headDescription} ({(suggestion is null ? "" : $"did you mean '{suggestion}'?; ")}known: {string.Join(", ", known)})");
    }

    /// <summary>
    /// A labelled head's whole check: every problem of its options (<see cref="Options{T}"/>), then its YAML labels
    /// (<see cref="Labels"/>) against the options that parsed (<paramref name="defaults"/> when none did).
    /// </summary>
    public static List<HeadConfigurationException> OptionsAndLabels<T>(HeadValidationContext context, IReadOnlyList<string> known,
        string headDescription, Func<JsonElement, T> parse, string freshHint, T defaults, Action<T, IReadOnlyList<string>> checkLabels,
        out T? parsed) where T : class
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(checkLabels);
        var problems = Options(context.Options, known, headDescription, parse, out parsed);
        var options = parsed ?? defaults;
        Labels(problems, context, freshHint, labels => checkLabels(options, labels));
        return problems;
    }

    /// <summary>
    /// Checks the YAML labels of a labelled head: a fresh head must have them (<paramref name="freshHint"/> says how), and
    /// <paramref name="check"/> checks them (count, names, one class weight each...). Labels that weights carry are
    /// checked when serving, since validating does not read weights.
    /// </summary>
    public static void Labels(List<HeadConfigurationException> problems, HeadValidationContext context, string freshHint,
        Action<IReadOnlyList<string>> check)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(check);
        if (context.Labels is null && context.WeightsPath is not null) return;
        Collect(problems, () => check(HeadLabels.Resolve(context.Labels, null, "fresh weights", fresh: true, freshHint)));
    }

    /// <summary>Runs <paramref name="check"/> and adds the <see cref="HeadConfigurationException"/> it throws, if any, to <paramref name="problems"/>.</summary>
    public static void Collect(List<HeadConfigurationException> problems, Action check)
    {
        ArgumentNullException.ThrowIfNull(problems);
        ArgumentNullException.ThrowIfNull(check);
        try
        {
            check();
        }
        catch (HeadConfigurationException e)
        {
            problems.Add(e);
        }
    }

    /// <summary><c>options.hidden_layers[1]</c> → <c>hidden_layers</c>; null for a field outside <c>options</c>.</summary>
    private static string? KeyOf(string field)
    {
        if (!field.StartsWith("options.", StringComparison.Ordinal)) return null;
        var key = field["options.".Length..];
        var end = key.IndexOfAny(['.', '[']);
        return end < 0 ? key : key[..end];
    }
}
