using System.Text.Json;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// Readers for the values of a head's <c>options:</c> (and of request parameters), shared by every head kind so that
/// each reports a wrong value in the same words: <c>"{field} must be ..., got {Describe(value)}"</c>.
/// Every reader throws a <see cref="HeadConfigurationException"/> on <paramref name="field"/> unless it is given an
/// <c>error</c> factory (for a request parameter, which is a <see cref="HeadInputException"/>).
/// </summary>
public static class HeadOptions
{
    /// <summary>
    /// Starts reading an <c>options:</c> object: false when it is absent (null or missing: every option takes its default);
    /// throws when it is not an object or names a key outside <paramref name="known"/>.
    /// </summary>
    /// <param name="headDescription">How the unknown-key message names the head, e.g. <c>a text-classification head</c>.</param>
    /// <param name="describe">How the not-an-object message shows the value (default <see cref="Describe"/>).</param>
    public static bool Check(JsonElement options, IReadOnlyList<string> known, string headDescription,
        Func<JsonElement, string>? describe = null)
    {
        if (options.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return false;
        if (options.ValueKind != JsonValueKind.Object)
            throw new HeadConfigurationException("options", $"options must be an object, got {(describe ?? Describe)(options)}");

        var unknown = options.EnumerateObject().Select(p => p.Name).Where(n => !known.Contains(n)).ToList();
        if (unknown.Count == 1) throw Sdk.HeadValidation.UnknownOption(unknown[0], known, headDescription);
        if (unknown.Count > 0)
            throw new HeadConfigurationException($"options.{unknown[0]}",
                $"unknown option{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(u => $"'{u}'"))} for {headDescription} (known: {string.Join(", ", known)})");
        return true;
    }

    /// <summary>The keys an options object names.</summary>
    public static HashSet<string> Given(JsonElement options) => options.EnumerateObject().Select(p => p.Name).ToHashSet();

    /// <summary>The JSON kind in lower case (<c>array</c>, <c>string</c>, ...).</summary>
    public static string KindName(JsonElement v) => v.ValueKind.ToString().ToLowerInvariant();

    public static string String(string field, JsonElement v) => String(field, v, Configuration(field));

    public static string String(string field, JsonElement v, Func<string, Exception> error) =>
        v.ValueKind == JsonValueKind.String ? v.GetString()! : throw error($"{field} must be a string, got {Describe(v)}");

    public static int Int(string field, JsonElement v, int min) => Int(field, v, min, Configuration(field));

    public static int Int(string field, JsonElement v, int min, Func<string, Exception> error)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var i))
            throw error($"{field} must be an integer, got {Describe(v)}");
        if (i < min) throw error($"{field} must be at least {min}, got {i}");
        return i;
    }

    public static bool Bool(string field, JsonElement v) => Bool(field, v, Configuration(field));

    public static bool Bool(string field, JsonElement v, Func<string, Exception> error) => v.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw error($"{field} must be true or false, got {Describe(v)}"),
    };

    /// <summary>A number in [0, 1) (a dropout probability).</summary>
    public static double Probability(string field, JsonElement v) => Probability(field, v, Configuration(field));

    public static double Probability(string field, JsonElement v, Func<string, Exception> error)
    {
        if (v.ValueKind != JsonValueKind.Number) throw error($"{field} must be a number, got {Describe(v)}");
        var d = v.GetDouble();
        if (d is < 0 or >= 1) throw error($"{field} must be in [0, 1), got {d}");
        return d;
    }

    /// <summary>A list of integers of at least <paramref name="min"/>; items are reported as <c>field[i]</c>.</summary>
    /// <param name="listDescription">What the not-a-list message asks for, e.g. <c>a list of layer sizes</c>.</param>
    public static IReadOnlyList<int> Ints(string field, JsonElement v, int min, string listDescription)
    {
        if (v.ValueKind != JsonValueKind.Array) throw new HeadConfigurationException(field, $"{field} must be {listDescription}, got {Describe(v)}");
        var list = new List<int>();
        foreach (var e in v.EnumerateArray()) list.Add(Int($"{field}[{list.Count}]", e, min));
        return list;
    }

    /// <summary>A list of positive finite numbers; items are reported as <c>field[i]</c>.</summary>
    /// <param name="listDescription">What the not-a-list message asks for, e.g. <c>a list of numbers (one per label)</c>.</param>
    public static IReadOnlyList<double> PositiveNumbers(string field, JsonElement v, string listDescription)
    {
        if (v.ValueKind != JsonValueKind.Array) throw new HeadConfigurationException(field, $"{field} must be {listDescription}, got {Describe(v)}");
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

    /// <summary>
    /// A hidden-state index counted like Python (0 = embeddings, -1 = last layer), checked against the body;
    /// returned as given.
    /// </summary>
    public static int Layer(string field, JsonElement v, BodyInfo body)
    {
        var layer = Int(field, v, min: int.MinValue);
        var count = body.NumHiddenLayers + 1;
        if (layer < -count || layer >= count)
            throw new HeadConfigurationException(field,
                $"layer {layer} does not exist: the body has {count} hidden states (0 = embeddings .. {body.NumHiddenLayers} = last layer, or -1 .. -{count})");
        return layer;
    }

    /// <summary>
    /// Parses the options a saved head folder records: a problem with them is a <see cref="HeadConfigurationException"/>
    /// on <c>weights</c> naming the folder's head.json.
    /// </summary>
    public static T ParseSaved<T>(string folder, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (HeadConfigurationException e)
        {
            throw new HeadConfigurationException("weights", $"{Path.Combine(folder, HeadManifest.FileName)}: {e.Message}");
        }
    }

    /// <summary>
    /// Checks that each of <paramref name="keys"/> (the structural options the configuration gives) has the value the saved
    /// head in <paramref name="folder"/> was trained with; <paramref name="mine"/> and <paramref name="theirs"/> show a key's value.
    /// </summary>
    public static void CheckSavedAgree(string folder, IEnumerable<string> keys, Func<string, string> mine, Func<string, string> theirs)
    {
        foreach (var key in keys)
        {
            var m = mine(key);
            var t = theirs(key);
            if (m != t)
                throw new HeadConfigurationException($"options.{key}",
                    $"the weights in {folder} were trained with {key} {t}, the configuration says {m}; remove options.{key} or train a new head");
        }
    }

    /// <summary>A JSON value as an error message shows it: <c>the string "x"</c>, <c>the number 3</c>, <c>a list</c>, ...</summary>
    public static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{v.GetString()}\"",
        JsonValueKind.Number => $"the number {v.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => v.GetRawText(),
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        _ => v.ValueKind.ToString(),
    };

    private static Func<string, Exception> Configuration(string field) => m => new HeadConfigurationException(field, m);
}
