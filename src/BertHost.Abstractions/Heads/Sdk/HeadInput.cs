using System.Text.Json;
using BertHost.Abstractions.Text;

namespace BertHost.Abstractions.Heads.Sdk;

/// <summary>
/// Reading one request input the way every head reports problems: a <see cref="HeadInputException"/> naming the field
/// (<c>text</c>, <c>choices[2]</c>, ...) with <c>"{field} must be a string, got {value}"</c>, <c>"{field} is empty"</c>,
/// <c>"unknown input field '{name}' (...)"</c> and <c>"{field} is missing: ..."</c>.
/// </summary>
/// <example>
/// <code>
/// var fields = HeadInput.Fields(input, ["text", "text_pair"], bareString: "text",
///     expected: "a string or an object with text (and optionally text_pair)",
///     unknownHint: "a text-classification input has text and optionally text_pair");
/// var text = HeadInput.Required(fields, "text", "text is missing: send {\"text\": \"...\"}");
/// var pair = HeadInput.Optional(fields, "text_pair");
/// </code>
/// </example>
public static class HeadInput
{
    /// <summary>
    /// The fields of an input object, in order, each name checked against <paramref name="known"/>; a bare string stands
    /// for <c>{bareString: s}</c> when <paramref name="bareString"/> is given. Anything else is refused on
    /// <paramref name="errorField"/> (default: the first known field) with "the input must be {expected}, got ...".
    /// </summary>
    /// <param name="expected">What an input is, for the message (e.g. <c>an object {"question": "...", "context": "..."}</c>).</param>
    /// <param name="unknownHint">What the fields are, after an unknown one (e.g. <c>a question-answering input has question and context</c>).</param>
    public static IReadOnlyDictionary<string, JsonElement> Fields(JsonElement input, IReadOnlyCollection<string> known, string expected,
        string unknownHint, string? bareString = null, string? errorField = null)
    {
        ArgumentNullException.ThrowIfNull(known);
        if (bareString is not null && input.ValueKind == JsonValueKind.String)
            return new Dictionary<string, JsonElement> { [bareString] = input };
        if (input.ValueKind != JsonValueKind.Object)
            throw new HeadInputException(errorField ?? bareString ?? known.First(), $"the input must be {expected}, got {HeadOptions.Describe(input)}");
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in input.EnumerateObject())
        {
            if (!known.Contains(p.Name)) throw new HeadInputException(p.Name, $"unknown input field '{p.Name}' ({unknownHint})");
            fields[p.Name] = p.Value;
        }
        return fields;
    }

    /// <summary>A required text field: present, a string, not blank.</summary>
    /// <param name="missing">The message when the field is absent (how to send it).</param>
    public static string Required(IReadOnlyDictionary<string, JsonElement> fields, string field, string missing)
    {
        ArgumentNullException.ThrowIfNull(fields);
        return fields.TryGetValue(field, out var v) ? Text(field, v) : throw new HeadInputException(field, missing);
    }

    /// <summary>An optional text field: null when absent or null, else a non-blank string.</summary>
    public static string? Optional(IReadOnlyDictionary<string, JsonElement> fields, string field)
    {
        ArgumentNullException.ThrowIfNull(fields);
        return fields.TryGetValue(field, out var v) && v.ValueKind != JsonValueKind.Null ? Text(field, v) : null;
    }

    /// <summary>A string that is not blank.</summary>
    public static string Text(string field, JsonElement v) =>
        v.ValueKind == JsonValueKind.String ? NonBlank(field, v.GetString()!) : throw new HeadInputException(field, $"{field} must be a string, got {HeadOptions.Describe(v)}");

    /// <summary>A string, refused when blank.</summary>
    public static string NonBlank(string field, string value) =>
        string.IsNullOrWhiteSpace(value) ? throw new HeadInputException(field, $"{field} is empty") : value;

    /// <summary>
    /// A list of strings; item problems are reported on <c>field[i]</c>. <paramref name="blankAllowed"/> keeps items that are
    /// white space (only the empty string is refused: pre-split words may be a space-free token of any kind).
    /// </summary>
    /// <param name="listDescription">What the not-a-list message asks for, e.g. <c>a list of strings</c>.</param>
    public static List<string> Texts(string field, JsonElement v, string listDescription, bool blankAllowed = false)
    {
        if (v.ValueKind != JsonValueKind.Array) throw new HeadInputException(field, $"{field} must be {listDescription}, got {HeadOptions.Describe(v)}");
        var list = new List<string>();
        foreach (var e in v.EnumerateArray())
        {
            var f = $"{field}[{list.Count}]";
            if (e.ValueKind != JsonValueKind.String) throw new HeadInputException(f, $"{f} must be a string, got {HeadOptions.Describe(e)}");
            var s = e.GetString()!;
            list.Add(blankAllowed ? (s.Length == 0 ? throw new HeadInputException(f, $"{f} is empty") : s) : NonBlank(f, s));
        }
        return list;
    }

    /// <summary>The request's <c>parameters</c>: absent, null or an object; anything else is refused on <c>parameters</c>.</summary>
    /// <returns>Whether there is a parameters object to read.</returns>
    public static bool CheckParameters(JsonElement parameters)
    {
        if (parameters.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return false;
        if (parameters.ValueKind != JsonValueKind.Object)
            throw new HeadInputException("parameters", $"parameters must be an object, got {HeadOptions.Describe(parameters)}");
        return true;
    }

    /// <summary>
    /// The refusal of a deployment with <c>oversized: refuse</c>: when the text (and pair) is longer than
    /// <paramref name="maxLength"/> tokens with special tokens, a <see cref="HeadInputException"/> on <paramref name="field"/>
    /// tells the caller the input's length instead of answering from a silently cut input.
    /// </summary>
    public static void RefuseIfOversized(ITextTokenizer tokenizer, string text, string? pair, int maxLength, string field)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var full = tokenizer.Encode(text, pair, new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate })[0];
        if (full.Length > maxLength) throw Oversized(field, full.Length, maxLength, "truncating");
    }

    /// <summary>The oversized refusal's words: "the input is {length} tokens; this head accepts at most {max} (the deployment refuses oversized inputs instead of {instead})".</summary>
    /// <param name="instead">What the head does otherwise: <c>truncating</c>, <c>splitting them into windows</c>.</param>
    public static HeadInputException Oversized(string field, int length, int maxLength, string instead) =>
        new(field, $"the input is {length} tokens; this head accepts at most {maxLength} (the deployment refuses oversized inputs instead of {instead})");
}
