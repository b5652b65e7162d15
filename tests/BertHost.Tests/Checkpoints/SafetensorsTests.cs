using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using BertHost.Core.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static BertHost.Tests.Checkpoints.CheckpointTestSupport;

namespace BertHost.Tests.Checkpoints;

public class SafetensorsTests
{
    [Fact]
    public void Reads_a_file_written_independently_in_python()
    {
        var expected = LoadExpected(Fixture("state_dict.expected.json"))
            .Where(e => !e.Name.StartsWith("views.") && !e.Name.StartsWith("same.") && !e.Name.StartsWith("tied."))
            .ToList();
        using var f = SafetensorsFile.Open(Fixture("reference.safetensors"));
        Assert.Equal(expected.Select(e => e.Name).Order(StringComparer.Ordinal), f.Tensors.Select(t => t.Name));
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal("hand-written", f.Metadata["note"]);
        foreach (var e in expected)
        {
            using var t = f.Read(e.Name);
            AssertMatches(e, t);
        }
    }

    [Fact]
    public void ReadInto_fills_a_parameter_in_place_and_converts_where_it_must()
    {
        var expected = LoadExpected(Fixture("state_dict.expected.json"))
            .Where(e => !e.Name.StartsWith("views.") && !e.Name.StartsWith("same.") && !e.Name.StartsWith("tied.") && e.Shape.Length == 2)
            .ToList();
        Assert.NotEmpty(expected);
        using var f = SafetensorsFile.Open(Fixture("reference.safetensors"));
        foreach (var e in expected)
        {
            using var stored = f.Read(e.Name);
            // Same dtype and shape, contiguous: read straight into it.
            using var direct = full(stored.shape, 7, stored.dtype);
            var before = DataAddress(direct);
            f.ReadInto(e.Name, direct);
            Assert.Equal(before, DataAddress(direct));
            Assert.True(direct.allclose(stored, 0, 0));
            // Another dtype, or a strided view: converted and copied as copy_ does.
            using var wide = zeros(stored.shape, ScalarType.Float64);
            f.ReadInto(e.Name, wide);
            using var storedWide = stored.to(ScalarType.Float64);
            Assert.True(wide.allclose(storedWide, 0, 0));
            using var storage = zeros([stored.shape[1], stored.shape[0]], stored.dtype);
            using var transposed = storage.t();
            f.ReadInto(e.Name, transposed);
            Assert.True(transposed.allclose(stored, 0, 0));
        }
        using var wrong = zeros(3);
        Assert.Throws<CheckpointException>(() => f.ReadInto("no.such.tensor", wrong));
    }

    private static unsafe nint DataAddress(Tensor t) => (nint)BertHost.Core.Backends.TensorMemory.Bytes(t);

    [Fact]
    public void Writer_round_trips_every_dtype_exactly()
    {
        using var tmp = new TempFolder();
        var expected = LoadExpected(Fixture("state_dict.expected.json"));
        var tensors = new Dictionary<string, Tensor>();
        try
        {
            using (var src = PyTorchCheckpointFile.Open(Fixture("state_dict.pt")))
                foreach (var e in expected) tensors[e.Name] = src.Read(e.Name);
            // Every supported dtype is in the fixture.
            Assert.Equal(DTypes.Names.Order(), tensors.Values.Select(t => DTypes.FromScalarType(t.dtype)).Distinct().Order());

            var path = tmp.File("all.safetensors");
            SafetensorsWriter.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["ünïcode"] = "välue \"quoted\"" });
            using var f = SafetensorsFile.Open(path);
            Assert.Equal(tensors.Count, f.Tensors.Count);
            Assert.Equal("välue \"quoted\"", f.Metadata["ünïcode"]);
            foreach (var e in expected)
            {
                using var back = f.Read(e.Name);
                AssertMatches(e, back);
                Assert.Equal(Bytes(tensors[e.Name]), Bytes(back));
            }
            AssertHeaderIsCanonical(path);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Fact]
    public void Writer_makes_contiguous_copies_of_views_and_keeps_the_source_untouched()
    {
        using var tmp = new TempFolder();
        using var baseT = torch.arange(24, dtype: ScalarType.Float32).reshape(4, 6);
        using var transposed = baseT.t();
        using var sliced = baseT[1..3, 2..5];
        using var bf16 = torch.randn(7, 3).to_type(ScalarType.BFloat16).t();
        var path = tmp.File("views.safetensors");
        SafetensorsWriter.Save(path, [new("t", transposed), new("s", sliced), new("bf", bf16)]);
        using var f = SafetensorsFile.Open(path);
        using var t = f.Read("t");
        using var s = f.Read("s");
        using var b = f.Read("bf");
        Assert.True(Same(transposed, t));
        Assert.True(Same(sliced, s));
        Assert.Equal(ScalarType.BFloat16, b.dtype);
        Assert.Equal(Bytes(bf16), Bytes(b));
        Assert.False(transposed.is_contiguous());
        AssertHeaderIsCanonical(path);
    }

    [Fact]
    public void Writer_without_metadata_writes_no_metadata_key_and_handles_no_tensors()
    {
        using var tmp = new TempFolder();
        var path = tmp.File("none.safetensors");
        SafetensorsWriter.Save(path, []);
        using (var f = SafetensorsFile.Open(path))
        {
            Assert.Empty(f.Tensors);
            Assert.Empty(f.Metadata);
        }
        Assert.DoesNotContain("__metadata__", ReadHeaderText(path));
        Assert.Equal(16, new FileInfo(path).Length); // 8 + "{}" padded to 8
    }

    [Fact]
    public void Writer_refuses_duplicate_and_reserved_names()
    {
        using var tmp = new TempFolder();
        using var a = torch.ones(2);
        var dup = Assert.Throws<ArgumentException>(() => SafetensorsWriter.Save(tmp.File("d.safetensors"), [new("x", a), new("x", a)]));
        Assert.Contains("'x'", dup.Message);
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.Save(tmp.File("m.safetensors"), [new("__metadata__", a)]));
        using var c = torch.ones(2, dtype: ScalarType.ComplexFloat32);
        var cx = Assert.Throws<ArgumentException>(() => SafetensorsWriter.Save(tmp.File("c.safetensors"), [new("c", c)]));
        Assert.Contains("'c'", cx.Message);
        Assert.Empty(Directory.GetFiles(tmp.Path)); // nothing half-written, no temp files left
    }

    [Fact]
    public void Writer_replaces_an_existing_file_atomically_and_leaves_no_temp_files()
    {
        using var tmp = new TempFolder();
        var path = tmp.File("m.safetensors");
        using var one = torch.ones(3);
        using var two = torch.full(5, 2.0f);
        SafetensorsWriter.Save(path, [new("w", one)]);
        using (var held = SafetensorsFile.Open(path))
        {
            // Replacing while a reader holds the old file open: the reader keeps the old contents.
            SafetensorsWriter.Save(path, [new("w", two)]);
            using var old = held.Read("w");
            Assert.Equal(new long[] { 3 }, old.shape);
        }
        using (var f = SafetensorsFile.Open(path))
        {
            using var w = f.Read("w");
            Assert.Equal(new float[] { 2, 2, 2, 2, 2 }, w.data<float>().ToArray());
        }
        Assert.Equal(new[] { path }, Directory.GetFiles(tmp.Path));
    }

    [Fact]
    public void Writer_accepts_tensors_requiring_grad()
    {
        using var tmp = new TempFolder();
        using var p = torch.randn(2, 3).requires_grad_(true);
        var path = tmp.File("p.safetensors");
        SafetensorsWriter.Save(path, [new("p", p)]);
        using var f = SafetensorsFile.Open(path);
        using var back = f.Read("p");
        Assert.False(back.requires_grad);
        Assert.Equal(Bytes(p.detach()), Bytes(back));
    }

    // ----- malformed files -----

    private static string WriteRaw(TempFolder tmp, string headerJson, int dataBytes, string name = "bad.safetensors", ulong? headerLength = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var path = tmp.File(name);
        using var fs = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, headerLength ?? (ulong)header.Length);
        fs.Write(len);
        fs.Write(header);
        fs.Write(new byte[dataBytes]);
        return path;
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "overlap")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8, "past the end")]
    [InlineData("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, "needs 12")]
    [InlineData("""{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}""", 1, "unsupported dtype 'F8_E4M3'")]
    [InlineData("""{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}}""", 1, "dtype 'Q9'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4, "non-negative")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}""", 4, "begin <= end")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1]}}""", 4, "data_offsets")]
    [InlineData("""{"a":{"shape":[1],"data_offsets":[0,4]}}""", 4, "dtype")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}""", 4, "not valid JSON")]
    [InlineData("""[1,2,3]""", 0, "JSON object")]
    [InlineData("""{"__metadata__":{"k":1}}""", 0, "must be a string")]
    public void Malformed_headers_are_reported_with_the_problem(string header, int dataBytes, string expected)
    {
        using var tmp = new TempFolder();
        var path = WriteRaw(tmp, header, dataBytes);
        var ex = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Contains(expected, ex.Message);
        Assert.Contains("bad.safetensors", ex.Message);
        if (header.Contains("\"a\"") && expected != "not valid JSON") Assert.Contains("tensor 'a'", ex.Message);
    }

    [Fact]
    public void Duplicate_names_in_the_header_are_reported()
    {
        using var tmp = new TempFolder();
        var path = WriteRaw(tmp, """{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""", 2);
        var ex = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Contains("twice", ex.Message);
    }

    [Fact]
    public void Insane_header_lengths_and_short_files_are_reported()
    {
        using var tmp = new TempFolder();
        var huge = WriteRaw(tmp, "{}", 0, "huge.safetensors", headerLength: 1UL << 40);
        var ex = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(huge));
        Assert.Contains("header length 1099511627776", ex.Message);
        Assert.Contains("huge.safetensors", ex.Message);

        var past = WriteRaw(tmp, "{}", 0, "past.safetensors", headerLength: 100);
        Assert.Contains("header length 100", Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(past)).Message);

        var tiny = tmp.File("tiny.safetensors");
        File.WriteAllBytes(tiny, [1, 2, 3]);
        Assert.Contains("too short", Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(tiny)).Message);

        // A valid file cut short: the last tensor's data is missing.
        using var t = torch.ones(10);
        var full = tmp.File("full.safetensors");
        SafetensorsWriter.Save(full, [new("w", t)]);
        var bytes = File.ReadAllBytes(full);
        var cut = tmp.File("cut.safetensors");
        File.WriteAllBytes(cut, bytes[..^4]);
        var cutEx = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(cut));
        Assert.Contains("tensor 'w'", cutEx.Message);
        Assert.Contains("past the end", cutEx.Message);
    }

    [Fact]
    public void Zero_length_tensors_may_share_an_offset_and_gaps_are_allowed()
    {
        using var tmp = new TempFolder();
        var path = WriteRaw(tmp,
            """{"e1":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},"e2":{"dtype":"I64","shape":[0],"data_offsets":[4,4]},"x":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}}""",
            8, "ok.safetensors");
        using var f = SafetensorsFile.Open(path);
        using var e1 = f.Read("e1");
        Assert.Equal(new long[] { 0, 3 }, e1.shape);
        using var x = f.Read("x");
        Assert.Equal(new byte[] { 0, 0 }, x.data<byte>().ToArray());
    }

    [Fact]
    public void Unknown_tensor_and_dispose()
    {
        using var tmp = new TempFolder();
        using var t = torch.ones(1);
        var path = tmp.File("one.safetensors");
        SafetensorsWriter.Save(path, [new("w", t)]);
        var f = SafetensorsFile.Open(path);
        var ex = Assert.Throws<CheckpointException>(() => f.Read("v"));
        Assert.Contains("tensor 'v'", ex.Message);
        Assert.Contains("one.safetensors", ex.Message);
        f.Dispose();
        f.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.Read("w"));
        File.Delete(path); // the map is released
    }

    // ----- helpers -----

    private static string ReadHeaderText(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return Encoding.UTF8.GetString(bytes, 8, n);
    }

    /// <summary>Header length a multiple of 8, names sorted, offsets contiguous from 0 to the end of the file.</summary>
    private static void AssertHeaderIsCanonical(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, n % 8);
        using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        var names = doc.RootElement.EnumerateObject().Select(p => p.Name).Where(x => x != "__metadata__").ToList();
        Assert.Equal(names.Order(StringComparer.Ordinal), names);
        long expectedBegin = 0;
        foreach (var name in names)
        {
            var e = doc.RootElement.GetProperty(name);
            var offs = e.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            Assert.Equal(expectedBegin, offs[0]);
            var numel = e.GetProperty("shape").EnumerateArray().Aggregate(1L, (a, d) => a * d.GetInt64());
            Assert.Equal(numel * DTypes.ElementSize(e.GetProperty("dtype").GetString()!), offs[1] - offs[0]);
            expectedBegin = offs[1];
        }
        Assert.Equal(bytes.Length - 8 - n, expectedBegin);
    }
}
