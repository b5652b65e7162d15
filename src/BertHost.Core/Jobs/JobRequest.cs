using System.Text.Json;
using BertHost.Core.Serving;

namespace BertHost.Core.Jobs;

/// <summary>
/// The fields of a job submission (a JSON object) with typed readers: a value of the wrong JSON type is a 400
/// (<see cref="ServingError.BadRequest"/>), a value out of range a 422 (<see cref="ServingError.InvalidInput"/>), both naming the field.
/// </summary>
public sealed class JobRequest
{
    private readonly Dictionary<string, JsonElement> _fields = new(StringComparer.Ordinal);
    private readonly string _prefix;
    private readonly IReadOnlyDictionary<string, List<UploadedFile>> _uploads;
    private readonly HashSet<string> _taken;

    /// <param name="prefix">Put before field names in messages (<c>tasks[1].</c> for an object nested in the submission).</param>
    /// <param name="uploads">Files uploaded with the submission, by the field they fill (<c>train</c>, <c>tasks[1].eval</c>).</param>
    public JobRequest(JsonElement root, string prefix = "", IReadOnlyDictionary<string, List<UploadedFile>>? uploads = null)
        : this(root, prefix, uploads ?? new Dictionary<string, List<UploadedFile>>(), new HashSet<string>(StringComparer.Ordinal))
    {
    }

    private JobRequest(JsonElement root, string prefix, IReadOnlyDictionary<string, List<UploadedFile>> uploads, HashSet<string> taken)
    {
        _uploads = uploads;
        _taken = taken;
        _prefix = prefix;
        if (root.ValueKind != JsonValueKind.Object)
            throw new ServingException(ServingError.BadRequest, $"{(prefix.Length == 0 ? "the job" : prefix.TrimEnd('.'))} must be a JSON object, got {JsonKinds.Describe(root.ValueKind)}", prefix.Length == 0 ? null : prefix.TrimEnd('.'));
        foreach (var p in root.EnumerateObject()) _fields[p.Name] = p.Value;
    }

    /// <summary>Whether the submission has the field (with a value other than null).</summary>
    public bool Has(string name) => Value(name) is not null;

    public IEnumerable<string> Names => _fields.Keys;

    /// <summary>Refuses a field not in <paramref name="allowed"/> (suggesting the closest one).</summary>
    public void CheckKnown(IReadOnlyCollection<string> allowed)
    {
        var unknown = _fields.Keys.FirstOrDefault(k => !allowed.Contains(k));
        if (unknown is null) return;
        var suggestion = Config.KeySuggestions.Closest(unknown, allowed);
        throw new ServingException(ServingError.BadRequest,
            $"unknown field '{_prefix}{unknown}'{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")}; expected {string.Join(", ", allowed)}", _prefix + unknown);
    }

    /// <summary>The field's name as messages give it (with the prefix of a nested object).</summary>
    public string Name(string field) => _prefix + field;

    /// <summary>The field's value, null when absent or null.</summary>
    public JsonElement? Raw(string name) => Value(name);

    /// <summary>The files uploaded for the field (marked as used), or null.</summary>
    public IReadOnlyList<UploadedFile>? Uploaded(string name)
    {
        if (!_uploads.TryGetValue(_prefix + name, out var files)) return null;
        _taken.Add(_prefix + name);
        return files;
    }

    /// <summary>Refuses uploaded files that no field of the submission took (a misnamed file part).</summary>
    public void CheckUploadsUsed()
    {
        var unused = _uploads.Keys.FirstOrDefault(k => !_taken.Contains(k));
        if (unused is not null)
            throw new ServingException(ServingError.BadRequest, $"uploaded file part '{unused}' fills no data field of this job (data fields: train, eval, corpus, config, tasks[i].train, tasks[i].eval)", unused);
    }

    private JsonElement? Value(string name) =>
        _fields.TryGetValue(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public string? String(string name, bool required = false)
    {
        if (Value(name) is not { } v)
            return required ? throw new ServingException(ServingError.BadRequest, $"{F(name)} is required", F(name)) : null;
        if (v.ValueKind != JsonValueKind.String)
            throw new ServingException(ServingError.BadRequest, $"{F(name)} must be a string, got {JsonKinds.Describe(v.ValueKind)}", F(name));
        var text = v.GetString()!;
        if (text.Trim().Length == 0) throw new ServingException(ServingError.InvalidInput, $"{F(name)} must not be empty", F(name));
        return text;
    }

    public int? Int(string name, int min, int max = int.MaxValue)
    {
        if (Value(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var n))
            throw new ServingException(ServingError.BadRequest, $"{F(name)} must be an integer, got {Show(v)}", F(name));
        if (n < min || n > max)
            throw new ServingException(ServingError.InvalidInput, max == int.MaxValue ? $"{F(name)} must be at least {min}, got {n}" : $"{F(name)} must be between {min} and {max}, got {n}", F(name));
        return (int)n;
    }

    public double? Number(string name, double min, double max = double.MaxValue)
    {
        if (Value(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number)
            throw new ServingException(ServingError.BadRequest, $"{F(name)} must be a number, got {Show(v)}", F(name));
        var x = v.GetDouble();
        if (!double.IsFinite(x) || x < min || x > max)
            throw new ServingException(ServingError.InvalidInput, max == double.MaxValue ? $"{F(name)} must be at least {min}, got {x}" : $"{F(name)} must be between {min} and {max}, got {x}", F(name));
        return x;
    }

    public bool? Bool(string name)
    {
        if (Value(name) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ServingException(ServingError.BadRequest, $"{F(name)} must be true or false, got {Show(v)}", F(name)),
        };
    }

    /// <summary>An array of non-empty strings (a single string counts as one); null when absent.</summary>
    public IReadOnlyList<string>? Strings(string name, bool required = false)
    {
        if (Value(name) is not { } v)
            return required ? throw new ServingException(ServingError.BadRequest, $"{F(name)} is required", F(name)) : null;
        if (v.ValueKind == JsonValueKind.String) return [String(name)!];
        if (v.ValueKind != JsonValueKind.Array)
            throw new ServingException(ServingError.BadRequest, $"{F(name)} must be an array of strings, got {Show(v)}", F(name));
        var items = new List<string>();
        foreach (var item in v.EnumerateArray())
        {
            var at = $"{F(name)}[{items.Count}]";
            if (item.ValueKind != JsonValueKind.String)
                throw new ServingException(ServingError.BadRequest, $"{at} must be a string, got {Show(item)}", F(name));
            var text = item.GetString()!;
            if (text.Trim().Length == 0) throw new ServingException(ServingError.InvalidInput, $"{at} must not be empty", F(name));
            items.Add(text);
        }
        if (items.Count == 0) throw new ServingException(ServingError.InvalidInput, $"{F(name)} must not be empty", F(name));
        return items;
    }

    /// <summary>An array of objects, each read as a request of its own (messages name <c>NAME[i].field</c>); null when absent.</summary>
    public IReadOnlyList<JobRequest>? Objects(string name)
    {
        if (Value(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Array)
            throw new ServingException(ServingError.BadRequest, $"{F(name)} must be an array of objects, got {Show(v)}", F(name));
        return v.EnumerateArray().Select((item, i) => new JobRequest(item, $"{F(name)}[{i}].", _uploads, _taken)).ToList();
    }

    private string F(string name) => _prefix + name;

    private static string Show(JsonElement v) => v.ValueKind == JsonValueKind.Number ? v.GetRawText() : JsonKinds.Describe(v.ValueKind);
}
