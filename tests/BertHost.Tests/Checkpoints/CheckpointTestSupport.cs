using System.Text.Json;
using BertHost.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Tests.Checkpoints;

/// <summary>A fresh temporary folder, deleted on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "berthost-ckpt-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

/// <summary>One entry of a fixture's expected.json, written by tests/reference/make_checkpoint_fixtures.py.</summary>
internal sealed record ExpectedTensor(string Name, string DType, long[] Shape, string Hex, JsonElement? Values);

internal static class CheckpointTestSupport
{
    public static string FixtureDir => TestPaths.Fixture("checkpoints");

    public static string Fixture(params string[] parts) => System.IO.Path.Combine([FixtureDir, .. parts]);

    public static IReadOnlyList<ExpectedTensor> LoadExpected(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var list = new List<ExpectedTensor>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            var v = p.Value;
            list.Add(new ExpectedTensor(
                p.Name,
                v.GetProperty("dtype").GetString()!,
                v.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray(),
                v.GetProperty("hex").GetString()!,
                v.TryGetProperty("values", out var values) ? values.Clone() : null));
        }
        return list;
    }

    /// <summary>The tensor's contiguous little-endian bytes, as lowercase hex.</summary>
    public static string Hex(Tensor t)
    {
        using var c = t.contiguous();
        return Convert.ToHexString(c.bytes).ToLowerInvariant();
    }

    /// <summary>Same dtype, shape and bytes.</summary>
    public static bool Same(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && Bytes(a).AsSpan().SequenceEqual(Bytes(b));

    public static byte[] Bytes(Tensor t)
    {
        using var c = t.contiguous();
        return c.bytes.ToArray();
    }

    /// <summary>Asserts dtype, shape, bytes and (where the fixture has them) values.</summary>
    public static void AssertMatches(ExpectedTensor e, Tensor t)
    {
        Assert.Equal(DeviceType.CPU, t.device_type);
        Assert.True(t.is_contiguous(), $"{e.Name} is not contiguous");
        Assert.Equal(e.DType, BertHost.Core.Checkpoints.DTypes.FromScalarType(t.dtype));
        Assert.Equal(e.Shape, t.shape);
        Assert.Equal(e.Hex, Hex(t));
        if (e.Values is not { } values) return;
        using var flat = t.reshape(-1);
        if (e.DType == "BOOL")
        {
            var expected = values.EnumerateArray().Select(v => v.GetBoolean()).ToArray();
            Assert.Equal(expected, flat.data<bool>().ToArray());
        }
        else if (e.DType is "F32" or "F16" or "BF16" or "F64")
        {
            var expected = values.EnumerateArray().Select(v => v.GetDouble()).ToArray();
            using var d = flat.to_type(ScalarType.Float64);
            Assert.Equal(expected, d.data<double>().ToArray());
        }
        else
        {
            var expected = values.EnumerateArray().Select(v => v.GetInt64()).ToArray();
            using var l = flat.to_type(ScalarType.Int64);
            Assert.Equal(expected, l.data<long>().ToArray());
        }
    }
}
