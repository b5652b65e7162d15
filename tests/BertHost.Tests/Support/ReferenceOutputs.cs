using System.Text.Json;
using static TorchSharp.torch;

namespace BertHost.Tests.Support;

/// <summary>
/// Reads Fixtures/models/expected.json: outputs of the independent Python reference (tests/reference) for the tiny
/// fixture models, and turns its nested lists into tensors.
/// </summary>
public sealed class ReferenceOutputs
{
    private static readonly Lazy<ReferenceOutputs> Instance = new(() => new ReferenceOutputs(TestPaths.Fixture("models", "expected.json")));

    private readonly JsonElement _cases;

    private ReferenceOutputs(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        _cases = doc.RootElement.GetProperty("cases").Clone();
    }

    public static ReferenceOutputs Load() => Instance.Value;

    public static string ModelFolder(string name) => TestPaths.Fixture("models", name);

    public JsonElement Case(string name) => _cases.GetProperty(name);

    /// <summary>A nested JSON array of numbers as a float32 (or int64) tensor of the same shape.</summary>
    public static Tensor ToTensor(JsonElement array, ScalarType dtype = ScalarType.Float32)
    {
        var shape = new List<long>();
        for (var e = array; e.ValueKind == JsonValueKind.Array; e = e[0]) shape.Add(e.GetArrayLength());
        var values = new List<double>();
        Flatten(array, values);
        using var t = tensor(values.ToArray(), shape.ToArray(), ScalarType.Float64);
        return t.to(dtype);
    }

    private static void Flatten(JsonElement e, List<double> into)
    {
        if (e.ValueKind == JsonValueKind.Array)
            foreach (var item in e.EnumerateArray()) Flatten(item, into);
        else into.Add(e.GetDouble());
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var diff = a.to(ScalarType.Float64).sub(b.to(ScalarType.Float64)).abs().max();
        return diff.item<double>();
    }
}
