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

    public JobRequest(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new ServingException(ServingError.BadRequest, $"the job must be a JSON object, got {JsonKinds.Describe(root.ValueKind)}");
        foreach (var p in root.EnumerateObject()) _fields[p.Name] = p.Value;
    }

    public IEnumerable<string> Names => _fields.Keys;

    /// <summary>Refuses a field not in <paramref name="allowed"/>.</summary>
    public void CheckKnown(IReadOnlyCollection<string> allowed)
    {
        var unknown = _fields.Keys.FirstOrDefault(k => !allowed.Contains(k));
        if (unknown is not null)
            throw new ServingException(ServingError.BadRequest, $"unknown field '{unknown}'; expected {string.Join(", ", allowed)}", unknown);
    }

    private JsonElement? Value(string name) =>
        _fields.TryGetValue(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public string? String(string name, bool required = false)
    {
        if (Value(name) is not { } v)
            return required ? throw new ServingException(ServingError.BadRequest, $"{name} is required", name) : null;
        if (v.ValueKind != JsonValueKind.String)
            throw new ServingException(ServingError.BadRequest, $"{name} must be a string, got {JsonKinds.Describe(v.ValueKind)}", name);
        var text = v.GetString()!;
        if (text.Trim().Length == 0) throw new ServingException(ServingError.InvalidInput, $"{name} must not be empty", name);
        return text;
    }

    public int? Int(string name, int min, int max = int.MaxValue)
    {
        if (Value(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var n))
            throw new ServingException(ServingError.BadRequest, $"{name} must be an integer, got {Show(v)}", name);
        if (n < min || n > max)
            throw new ServingException(ServingError.InvalidInput, max == int.MaxValue ? $"{name} must be at least {min}, got {n}" : $"{name} must be between {min} and {max}, got {n}", name);
        return (int)n;
    }

    public double? Number(string name, double min, double max = double.MaxValue)
    {
        if (Value(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number)
            throw new ServingException(ServingError.BadRequest, $"{name} must be a number, got {Show(v)}", name);
        var x = v.GetDouble();
        if (!double.IsFinite(x) || x < min || x > max)
            throw new ServingException(ServingError.InvalidInput, max == double.MaxValue ? $"{name} must be at least {min}, got {x}" : $"{name} must be between {min} and {max}, got {x}", name);
        return x;
    }

    public bool? Bool(string name)
    {
        if (Value(name) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ServingException(ServingError.BadRequest, $"{name} must be true or false, got {Show(v)}", name),
        };
    }

    private static string Show(JsonElement v) => v.ValueKind == JsonValueKind.Number ? v.GetRawText() : JsonKinds.Describe(v.ValueKind);
}
