using System.IO.Compression;
using BertHost.Core.Checkpoints;
using TorchSharp;
using static BertHost.Tests.Checkpoints.CheckpointTestSupport;

namespace BertHost.Tests.Checkpoints;

public class PyTorchCheckpointFileTests
{
    private static readonly string StateDict = Fixture("state_dict.pt");

    [Fact]
    public void Lists_every_tensor_in_state_dict_order_with_dtype_and_shape()
    {
        var expected = LoadExpected(Fixture("state_dict.expected.json"));
        using var f = PyTorchCheckpointFile.Open(StateDict);
        Assert.Equal(expected.Select(e => e.Name), f.Tensors.Select(t => t.Name));
        foreach (var e in expected)
        {
            var info = f.Tensors.Single(t => t.Name == e.Name);
            Assert.Equal(e.DType, info.DType);
            Assert.Equal(e.Shape, info.Shape);
            Assert.True(f.Contains(e.Name));
        }
        Assert.False(f.Contains("nope"));
        Assert.Equal(Path.GetFullPath(StateDict), f.Description);
    }

    [Fact]
    public void Reads_every_tensor_exactly_as_torch_saved_it()
    {
        var expected = LoadExpected(Fixture("state_dict.expected.json"));
        Assert.True(expected.Count >= 20);
        using var f = PyTorchCheckpointFile.Open(StateDict);
        foreach (var e in expected)
        {
            using var t = f.Read(e.Name);
            AssertMatches(e, t);
        }
    }

    [Theory]
    [InlineData("views.transposed")]     // stride (1, 4)
    [InlineData("views.slice")]          // storage offset 5
    [InlineData("views.slice2d")]        // offset 6, stride (5, 1)
    [InlineData("views.strided_half")]   // offset 1, stride 3, F16
    public void Views_honour_storage_offset_and_strides(string name)
    {
        var e = LoadExpected(Fixture("state_dict.expected.json")).Single(x => x.Name == name);
        using var f = PyTorchCheckpointFile.Open(StateDict);
        using var t = f.Read(name);
        AssertMatches(e, t);
    }

    [Fact]
    public void Transposed_view_has_the_transposed_values()
    {
        using var f = PyTorchCheckpointFile.Open(StateDict);
        using var t = f.Read("views.transposed");
        using var expected = torch.arange(12, dtype: torch.float32).reshape(3, 4).t().contiguous();
        Assert.True(Same(expected, t));
        using var s = f.Read("views.slice");
        Assert.Equal(new float[] { 105, 106, 107, 108, 109, 110 }, s.data<float>().ToArray());
    }

    [Fact]
    public void Tied_tensors_sharing_a_storage_read_equal_but_independent()
    {
        using var f = PyTorchCheckpointFile.Open(StateDict);
        using var a = f.Read("tied.decoder.weight");
        using var b = f.Read("tied.word_embeddings.weight");
        Assert.True(Same(a, b));
        a.add_(1);                                   // the caller owns each result: no aliasing
        Assert.False(Same(a, b));
        using var s1 = f.Read("same.a");
        using var s2 = f.Read("same.b");
        Assert.True(Same(s1, s2));
    }

    [Fact]
    public void Scalar_empty_and_parameter_tensors()
    {
        using var f = PyTorchCheckpointFile.Open(StateDict);
        using var scalar = f.Read("shapes.scalar");
        Assert.Empty(scalar.shape);
        Assert.Equal(3.5f, scalar.item<float>());
        using var empty = f.Read("shapes.empty");
        Assert.Equal(new long[] { 0, 3 }, empty.shape);
        using var p = f.Read("shapes.param");
        Assert.Equal(new long[] { 2, 2 }, p.shape);
        Assert.False(p.requires_grad);
    }

    [Fact]
    public void Unknown_tensor_name_is_a_checkpoint_error_naming_it()
    {
        using var f = PyTorchCheckpointFile.Open(StateDict);
        var ex = Assert.Throws<CheckpointException>(() => f.Read("missing.weight"));
        Assert.Contains("missing.weight", ex.Message);
        Assert.Contains("state_dict.pt", ex.Message);
    }

    [Fact]
    public void Pickle_with_a_disallowed_global_is_refused_not_run()
    {
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(Fixture("evil.pt")));
        Assert.Contains("__builtin__.print", ex.Message);
        Assert.Contains("evil.pt", ex.Message);
    }

    [Fact]
    public void Big_endian_byteorder_record_is_refused()
    {
        using var tmp = new TempFolder();
        var path = tmp.File("big.pt");
        File.Copy(StateDict, path);
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Update))
        {
            using var w = new StreamWriter(zip.CreateEntry("state_dict/byteorder").Open());
            w.Write("big");
        }
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("byteorder 'big'", ex.Message);

        var little = tmp.File("little.pt");
        File.Copy(StateDict, little);
        using (var zip = ZipFile.Open(little, ZipArchiveMode.Update))
        {
            using var w = new StreamWriter(zip.CreateEntry("state_dict/byteorder").Open());
            w.Write("little");
        }
        using var ok = PyTorchCheckpointFile.Open(little);
        using var t = ok.Read("dtypes.f32");
        Assert.Equal(new long[] { 3, 4 }, t.shape);
    }

    [Fact]
    public void Any_prefix_folder_and_a_missing_storage_entry()
    {
        using var tmp = new TempFolder();
        // Re-pack the archive under another prefix, leaving out storage 0 (dtypes.f32).
        var path = tmp.File("renamed.bin");
        using (var src = ZipFile.OpenRead(StateDict))
        using (var dst = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            foreach (var e in src.Entries)
            {
                if (e.FullName == "state_dict/data/0") continue;
                var entry = dst.CreateEntry("pytorch_model/" + e.FullName["state_dict/".Length..], CompressionLevel.NoCompression);
                using var i = e.Open();
                using var o = entry.Open();
                i.CopyTo(o);
            }
        }
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(path));
        Assert.Contains("dtypes.f32", ex.Message);
        Assert.Contains("pytorch_model/data/0", ex.Message);
    }

    [Fact]
    public void Compressed_entries_read_too()
    {
        using var tmp = new TempFolder();
        var path = tmp.File("deflated.pt");
        using (var src = ZipFile.OpenRead(StateDict))
        using (var dst = ZipFile.Open(path, ZipArchiveMode.Create))
            foreach (var e in src.Entries)
            {
                var entry = dst.CreateEntry("archive/" + e.FullName["state_dict/".Length..], CompressionLevel.Optimal);
                using var i = e.Open();
                using var o = entry.Open();
                i.CopyTo(o);
            }
        var expected = LoadExpected(Fixture("state_dict.expected.json"));
        using var f = PyTorchCheckpointFile.Open(path);
        foreach (var e in expected)
        {
            using var t = f.Read(e.Name);
            AssertMatches(e, t);
        }
    }

    [Fact]
    public void Not_a_checkpoint_and_missing_file()
    {
        using var tmp = new TempFolder();
        var junk = tmp.File("junk.bin");
        File.WriteAllText(junk, "hello, not a zip");
        var ex = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(junk));
        Assert.Contains("junk.bin", ex.Message);
        Assert.Contains("zip", ex.Message);

        var ex2 = Assert.Throws<CheckpointException>(() => PyTorchCheckpointFile.Open(tmp.File("absent.bin")));
        Assert.Contains("absent.bin", ex2.Message);
        Assert.Contains("not found", ex2.Message);
    }

    [Fact]
    public void Read_after_dispose_throws()
    {
        var f = PyTorchCheckpointFile.Open(StateDict);
        f.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.Read("dtypes.f32"));
    }
}
