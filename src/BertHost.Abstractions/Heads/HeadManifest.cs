using System.Text.Json;
using System.Text.Json.Nodes;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// The manifest of a saved head folder, for every head kind: <c>head.json</c>, written next to <c>head.safetensors</c>:
/// <c>{ kind, labels, options, body_fingerprint, metrics, saved_at }</c>.
/// </summary>
public sealed record HeadManifest(string Kind, IReadOnlyList<string> Labels, JsonObject Options, string BodyFingerprint,
    IReadOnlyDictionary<string, double>? Metrics, DateTimeOffset SavedAt)
{
    public const string FileName = "head.json";
    public const string WeightsFileName = "head.safetensors";

    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["kind"] = Kind,
            ["labels"] = new JsonArray(Labels.Select(l => (JsonNode)l).ToArray()),
            ["options"] = Options.DeepClone(),
            ["body_fingerprint"] = BodyFingerprint,
            ["metrics"] = Metrics is null ? null : new JsonObject(Metrics.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["saved_at"] = (ReproducibleTimestamp() ?? SavedAt).ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture),
        };
        return o;
    }

    /// <summary>
    /// SOURCE_DATE_EPOCH (seconds since 1970, the reproducible-builds convention) when set: then saved_at is that
    /// instant, so a head regenerated from the same data and seed is byte-for-byte the committed one
    /// (tools/regenerate-default-heads.sh). An unparsable value is ignored.
    /// </summary>
    private static DateTimeOffset? ReproducibleTimestamp() =>
        long.TryParse(Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH"), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds <= 253402300799
            ? DateTimeOffset.FromUnixTimeSeconds(seconds)
            : null;

    /// <summary>Reads a manifest; a malformed one throws <see cref="FormatException"/> naming the field.</summary>
    public static HeadManifest Read(string path)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new FormatException($"{path} is not valid JSON: {e.Message}");
        }
        if (root is not JsonObject o) throw new FormatException($"{path} must hold a JSON object");
        string Str(string key) => o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new FormatException($"{path}: '{key}' must be a string");
        var labels = o["labels"] is JsonArray a && a.All(x => x is JsonValue v && v.TryGetValue<string>(out _))
            ? a.Select(x => x!.GetValue<string>()).ToList()
            : throw new FormatException($"{path}: 'labels' must be a list of strings");
        var options = o["options"] switch
        {
            null => new JsonObject(),
            JsonObject opts => (JsonObject)opts.DeepClone(),
            _ => throw new FormatException($"{path}: 'options' must be an object"),
        };
        Dictionary<string, double>? metrics = null;
        if (o["metrics"] is JsonObject m)
            metrics = m.Where(kv => kv.Value is JsonValue).ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>());
        var savedAt = o["saved_at"] is JsonValue sv && sv.TryGetValue<string>(out var s) && DateTimeOffset.TryParse(s, out var t) ? t : default;
        return new HeadManifest(Str("kind"), labels, options, Str("body_fingerprint"), metrics, savedAt);
    }

    /// <summary>Writes the manifest atomically (a temporary file in the same folder, then a rename).</summary>
    public void Write(string folder)
    {
        Directory.CreateDirectory(folder);
        var target = Path.Combine(folder, FileName);
        var temp = Path.Combine(folder, $".{FileName}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllText(temp, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            File.Move(temp, target, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }
}
