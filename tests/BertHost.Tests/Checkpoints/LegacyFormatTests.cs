using BertHost.Core.Checkpoints;
using BertHost.Tests.Support;
using TorchSharp;
using static BertHost.Tests.Checkpoints.CheckpointTestSupport;

namespace BertHost.Tests.Checkpoints;

/// <summary>
/// The legacy (pre-1.6, non-zip) torch.save format: fixtures written by tests/reference/make_checkpoint_fixtures.py with
/// torch 1.13 (<c>_use_new_zipfile_serialization=False</c>) and, for storage views, by hand in the same layout.
/// </summary>
public class LegacyFormatTests
{
    private static readonly string Legacy = Fixture("legacy.pt");
    private static readonly string StorageViews = Fixture("legacy_storage_views.pt");

    [Fact]
    public void Fixture_is_really_the_legacy_format()
    {
        var head = File.ReadAllBytes(Legacy)[..4];
        Assert.Equal(new byte[] { 0x80, 0x02, 0x8a, 0x0a }, head);
        using var f = PyTorchCheckpointFile.Open(Legacy);
        Assert.True(f.IsLegacyFormat);
        Assert.Contains("legacy", f.ToString());
        using var zip = PyTorchCheckpointFile.Open(Fixture("state_dict.pt"));
        Assert.False(zip.IsLegacyFormat);
    }

    [Fact]
    public void Lists_every_tensor_in_state_dict_order_with_dtype_and_shape()
    {
        var expected = LoadExpected(Fixture("state_dict.expected.json"));
        using var f = PyTorchCheckpointFile.Open(Legacy);
        Assert.Equal(expected.Select(e => e.Name), f.Tensors.Select(t => t.Name));
        foreach (var e in expected)
        {
            var info = f.Tensors.Single(t => t.Name == e.Name);
            Assert.Equal(e.DType, info.DType);
            Assert.Equal(e.Shape, info.Shape);
        }
        Assert.Equal(Path.GetFullPath(Legacy), f.Description);
    }

    [Fact]
    public void Reads_every_tensor_exactly_as_torch_saved_it()
    {
        // Every dtype (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, inf/nan halves), views, tied storages,
        // a scalar, an empty tensor and a parameter: the same state dict as state_dict.pt.
        var expected = LoadExpected(Fixture("state_dict.expected.json"));
        Assert.Contains(expected, e => e.DType == "I64");
        Assert.Contains(expected, e => e.DType == "BF16");
        using var f = PyTorchCheckpointFile.Open(Legacy);
        foreach (var e in expected)
        {
            using var t = f.Read(e.Name);
            AssertMatches(e, t);
        }
    }

    [Fact]
    public void Reads_the_same_tensors_as_the_zip_format()
    {
        using var legacy = PyTorchCheckpointFile.Open(Legacy);
        using var zip = PyTorchCheckpointFile.Open(Fixture("state_dict.pt"));
        Assert.Equal(zip.Tensors.Select(t => t.ToString()), legacy.Tensors.Select(t => t.ToString()));
        foreach (var info in zip.Tensors)
        {
            using var a = zip.Read(info.Name);
            using var b = legacy.Read(info.Name);
            Assert.True(Same(a, b), info.Name);
        }
    }

    [Fact]
    public void Views_and_tied_storages()
    {
        using var f = PyTorchCheckpointFile.Open(Legacy);
        using var t = f.Read("views.transposed");
        using var expected = torch.arange(12, dtype: torch.float32).reshape(3, 4).t().contiguous();
        Assert.True(Same(expected, t));
        using var s = f.Read("views.slice");
        Assert.Equal(new float[] { 105, 106, 107, 108, 109, 110 }, s.data<float>().ToArray());
        using var s2 = f.Read("views.slice2d");
        Assert.Equal(new float[] { 106, 107, 108, 111, 112, 113 }, s2.data<float>().ToArray());

        using var a = f.Read("tied.decoder.weight");
        using var b = f.Read("tied.word_embeddings.weight");
        Assert.True(Same(a, b));
        a.add_(1);                                   // each result is its own tensor
        Assert.False(Same(a, b));
        using var c = f.Read("tied.decoder.weight");
        Assert.True(Same(c, b));
    }

    [Fact]
    public void Storage_views_from_view_metadata_are_honoured()
    {
        var expected = LoadExpected(Fixture("legacy_storage_views.expected.json"));
        using var f = PyTorchCheckpointFile.Open(StorageViews);
        Assert.True(f.IsLegacyFormat);
        Assert.Equal(expected.Select(e => e.Name), f.Tensors.Select(t => t.Name));
        foreach (var e in expected)
        {
            using var t = f.Read(e.Name);
            AssertMatches(e, t);
        }
        using var slice = f.Read("view.slice");
        Assert.Equal(new float[] { 103, 104 }, slice.data<float>().ToArray());
        using var transposed = f.Read("view.transposed");
        Assert.Equal(new float[] { 106, 108, 107, 109 }, transposed.data<float>().ToArray());
        using var ints = f.Read("ints.tail");
        Assert.Equal(new long[] { -8, 1L << 40, -(1L << 50) }, ints.data<long>().ToArray());
    }

    [Fact]
    public void Big_endian_sys_info_is_refused()
    {
        using var tmp = new TempFolder();
        var bytes = File.ReadAllBytes(Legacy);
        var at = IndexOf(bytes, "little_endian"u8.ToArray());
        Assert.True(at > 0);
        var value = Array.IndexOf(bytes, (byte)0x88, at, 20);       // NEWTRUE just after the key (and its BINPUT)
        Assert.True(value > 0);
        bytes[value] = 0x89;                                        // NEWFALSE
        var path = tmp.File("big.pt");
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("big-endian", ex.Message);
        Assert.Contains("big.pt", ex.Message);
    }

    [Theory]
    [InlineData(-3, "truncated")]      // inside the last storage's bytes
    [InlineData(-1, "truncated")]
    [InlineData(2, "ends early")]      // inside the magic number pickle
    [InlineData(60, "ends early")]     // inside the sys_info pickle
    [InlineData(400, "ends early")]    // inside the state dict pickle
    public void Truncated_file_is_refused_naming_the_file(int cut, string expected)
    {
        using var tmp = new TempFolder();
        var bytes = File.ReadAllBytes(Legacy);
        var length = cut < 0 ? bytes.Length + cut : cut;
        var path = tmp.File("truncated.pt");
        File.WriteAllBytes(path, bytes[..length]);
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("truncated.pt", ex.Message);
        Assert.Contains(expected, ex.Message);
        Assert.Contains("legacy", ex.Message);
    }

    [Fact]
    public void Truncated_inside_a_storage_element_count_is_refused()
    {
        using var tmp = new TempFolder();
        var bytes = File.ReadAllBytes(Legacy);
        var storagesStart = bytes.Length - StorageAreaLength(bytes);
        var path = tmp.File("cut.pt");
        File.WriteAllBytes(path, bytes[..(storagesStart + 4)]);   // half of the first storage's 8-byte element count
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("cut.pt", ex.Message);
        Assert.Contains("truncated", ex.Message);
        Assert.Contains("element count", ex.Message);

        // With the whole storage area the file opens.
        File.WriteAllBytes(path, bytes);
        using var ok = PyTorchCheckpointFile.Open(path);
        Assert.True(ok.IsLegacyFormat);
    }

    [Fact]
    public void Corrupt_magic_number_and_protocol_version_are_refused()
    {
        using var tmp = new TempFolder();
        var bytes = File.ReadAllBytes(Legacy);
        var bad = (byte[])bytes.Clone();
        bad[6] ^= 0xff;                                             // a byte of the 10-byte magic number
        var path = tmp.File("magic.pt");
        File.WriteAllBytes(path, bad);
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("magic number", ex.Message);
        Assert.Contains("magic.pt", ex.Message);

        // PROTO 2, BININT2 1001, STOP follows the 15-byte magic pickle; make it 1002.
        Assert.Equal(new byte[] { 0x80, 0x02, (byte)'M', 0xe9, 0x03, (byte)'.' }, bytes[15..21]);
        bad = (byte[])bytes.Clone();
        bad[18] = 0xea;
        path = tmp.File("version.pt");
        File.WriteAllBytes(path, bad);
        ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("protocol version 1002", ex.Message);
    }

    [Fact]
    public void Trailing_garbage_in_place_of_the_storages_is_refused()
    {
        // Keep the pickles, replace the storage area with a huge element count.
        using var tmp = new TempFolder();
        var bytes = File.ReadAllBytes(Legacy);
        var storagesStart = bytes.Length - StorageAreaLength(bytes);
        var bad = bytes[..storagesStart].Concat(BitConverter.GetBytes(long.MaxValue / 2)).Concat(new byte[64]).ToArray();
        var path = tmp.File("garbage.pt");
        File.WriteAllBytes(path, bad);
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("garbage.pt", ex.Message);
        Assert.True(ex.Message.Contains("impossible element count") || ex.Message.Contains("truncated"), ex.Message);
    }

    [Fact]
    public void Read_after_dispose_throws()
    {
        var f = PyTorchCheckpointFile.Open(Legacy);
        f.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.Read("dtypes.f32"));
    }

    [Fact]
    public void Open_by_content_recognises_the_legacy_format_under_any_extension()
    {
        using var tmp = new TempFolder();
        var path = tmp.File("weights.data");
        File.Copy(Legacy, path);
        using var s = CheckpointFiles.Open(path);
        var f = Assert.IsType<PyTorchCheckpointFile>(s);
        Assert.True(f.IsLegacyFormat);
        using var t = s.Read("dtypes.i64");
        Assert.Equal(new long[] { -3, -1, 0, 1, 1L << 40, -(1L << 62) }, t.data<long>().ToArray());
    }

    [Fact]
    public void Tiny_bert_legacy_format_folder_reads_the_same_tensors_as_tiny_bert_pt()
    {
        var legacyFolder = TestPaths.Fixture("models", "tiny-bert-legacy-format");
        using var legacy = CheckpointFiles.OpenFolder(legacyFolder);
        var file = Assert.IsType<PyTorchCheckpointFile>(legacy);
        Assert.True(file.IsLegacyFormat);
        Assert.Equal(Path.Combine(legacyFolder, "pytorch_model.bin"), legacy.Description);

        using var zip = PyTorchCheckpointFile.Open(TestPaths.Fixture("models", "tiny-bert-pt", "pytorch_model.bin"));
        Assert.False(zip.IsLegacyFormat);
        Assert.Equal(zip.Tensors.Select(t => t.ToString()), legacy.Tensors.Select(t => t.ToString()));
        Assert.True(legacy.Tensors.Count > 20);
        foreach (var info in zip.Tensors)
        {
            using var expected = zip.Read(info.Name);
            using var actual = legacy.Read(info.Name);
            Assert.True(Same(expected, actual), info.Name);
        }

        // The tie survives the re-save: both names read the same bytes.
        using var decoder = legacy.Read("cls.predictions.decoder.weight");
        using var words = legacy.Read("bert.embeddings.word_embeddings.weight");
        Assert.True(Same(decoder, words));

        foreach (var name in new[] { "config.json", "vocab.txt", "tokenizer_config.json" })
            Assert.Equal(File.ReadAllBytes(TestPaths.Fixture("models", "tiny-bert-pt", name)),
                File.ReadAllBytes(Path.Combine(legacyFolder, name)));
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (var i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        return -1;
    }

    /// <summary>The length of the storage area (counts and bytes) at the end of a legacy file: everything after the key list pickle.</summary>
    private static int StorageAreaLength(byte[] bytes)
    {
        // The key list is the last pickle and ends with "e." (APPENDS, STOP) right before the first 8-byte count.
        for (var i = 0; i + 3 < bytes.Length; i++)
        {
            // PROTO 2 followed by EMPTY_LIST: the start of the key list pickle (the state dict starts with GLOBAL).
            if (bytes[i] == (byte)'.' && bytes[i + 1] == 0x80 && bytes[i + 2] == 0x02 && bytes[i + 3] == (byte)']')
            {
                var end = IndexOf(bytes[(i + 1)..], "e."u8.ToArray());
                return bytes.Length - (i + 1 + end + 2);
            }
        }
        throw new InvalidOperationException("no key list pickle found");
    }
}
