using System.Text.Json;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Http;

namespace BertHost.Api.Protocols;

/// <summary>
/// Which head a protocol route serves: the one the request names (OpenAI's <c>model</c>, our <c>model</c>/<c>head</c>
/// on TEI's routes, KServe's path), else the deployment's default (<c>protocols:</c>), else the only head of the kind.
/// The head must be of the kind the route speaks for and ready (409 stale, 503 failed: as the native routes).
/// </summary>
internal static class ProtocolHeads
{
    public static HeadStatus Resolve(HttpContext context, IInferenceEngine engine, string? requested, string kind, string? configuredDefault, string field)
    {
        HeadStatus head;
        if (requested is not null)
        {
            head = engine.FindHead(requested)
                ?? throw new ApiException(StatusCodes.Status404NotFound, ApiErrorCodes.UnknownHead,
                    $"no head named '{requested}' (heads of kind {kind}: {Names(engine, kind)})", field);
        }
        else if (configuredDefault is not null)
        {
            head = engine.FindHead(configuredDefault)
                ?? throw new InvalidOperationException($"protocols default head '{configuredDefault}' is not served");
        }
        else
        {
            var candidates = engine.Heads.Where(h => h.Kind == kind).ToList();
            head = candidates.Count switch
            {
                1 => engine.FindHead(candidates[0].Name)!,
                0 => throw ApiException.BadRequest($"this deployment has no {kind} head", field),
                _ => throw ApiException.BadRequest($"name the head in '{field}': this deployment has several {kind} heads ({Names(engine, kind)}) and protocols: names no default", field),
            };
        }
        RequestInfo.Of(context).Head = head.Name;
        if (head.Kind != kind)
            throw ApiException.BadRequest($"head '{head.Name}' is a {head.Kind} head; this route serves {kind} heads ({Names(engine, kind)})", field);
        EnsureServable(head, field);
        return head;
    }

    /// <summary>A stale head is refused with 409, one that failed to load with 503, before the engine is asked.</summary>
    public static void EnsureServable(HeadStatus head, string? field) => HeadStates.EnsureServable(head.Name, head.State, head.Error, field);

    private static string Names(IInferenceEngine engine, string kind)
    {
        var names = engine.Heads.Where(h => h.Kind == kind).Select(h => h.Name).ToList();
        return names.Count == 0 ? "none" : string.Join(", ", names);
    }

    /// <summary>A JSON object of request parameters for a head (null values left out).</summary>
    public static JsonElement Parameters(params (string Name, object? Value)[] values) =>
        JsonSerializer.SerializeToElement(values.Where(v => v.Value is not null).ToDictionary(v => v.Name, v => v.Value));

    /// <summary>
    /// <c>input</c>/<c>inputs</c> as a list of texts: a string or an array of strings. Token-id arrays (accepted by
    /// OpenAI and TEI) are refused: heads encode text themselves, so ids would bypass their encoding.
    /// </summary>
    public static List<string> Texts(JsonElement value, string field, int maxInputs)
    {
        if (value.ValueKind == JsonValueKind.String) return [value.GetString()!];
        if (value.ValueKind != JsonValueKind.Array)
            throw ApiException.BadRequest($"{field} must be a string or an array of strings, got {JsonKinds.Describe(value.ValueKind)}", field);
        var count = value.GetArrayLength();
        if (count == 0) throw ApiException.BadRequest($"{field} must not be empty", field);
        if (count > maxInputs)
            throw new ApiException(StatusCodes.Status413PayloadTooLarge, ApiErrorCodes.PayloadTooLarge, $"too many inputs: {count} (at most {maxInputs} per request)", field);
        var texts = new List<string>(count);
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            var itemField = $"{field}[{i++}]";
            if (item.ValueKind == JsonValueKind.Number || item.ValueKind == JsonValueKind.Array)
                throw ApiException.BadRequest($"token-id inputs are not supported; send the text (this host tokenizes with the served body's tokenizer)", itemField);
            if (item.ValueKind != JsonValueKind.String)
                throw ApiException.BadRequest($"{itemField} must be a string, got {JsonKinds.Describe(item.ValueKind)}", itemField);
            texts.Add(item.GetString()!);
        }
        return texts;
    }

    /// <summary>The texts as head inputs (JSON strings).</summary>
    public static List<JsonElement> AsInputs(IEnumerable<string> texts) => texts.Select(t => JsonSerializer.SerializeToElement(t)).ToList();

    public static bool? Bool(JsonElement value, string field) => value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Null => null,
        _ => throw ApiException.BadRequest($"{field} must be true or false, got {JsonKinds.Describe(value.ValueKind)}", field),
    };

    public static string? String(JsonElement value, string field) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Null => null,
        _ => throw ApiException.BadRequest($"{field} must be a string, got {JsonKinds.Describe(value.ValueKind)}", field),
    };

    /// <summary>The request body as an object, refusing other JSON and unknown fields (400 naming them).</summary>
    public static Dictionary<string, JsonElement> Fields(JsonElement root, IReadOnlyList<string> known)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw ApiException.BadRequest($"request body must be a JSON object, got {JsonKinds.Describe(root.ValueKind)}");
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var p in root.EnumerateObject())
        {
            if (!known.Contains(p.Name))
            {
                var suggestion = Core.Config.KeySuggestions.Closest(p.Name, known);
                throw ApiException.BadRequest($"unknown field '{p.Name}'{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")}; expected {string.Join(", ", known)}", p.Name);
            }
            fields[p.Name] = p.Value;
        }
        return fields;
    }
}
