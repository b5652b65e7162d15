using System.Text.Json;
using BertHost.Core.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static BertHost.Tests.Checkpoints.CheckpointTestSupport;

namespace BertHost.Tests.Checkpoints;

public class CheckpointFilesTests
{
    private static void WriteSafetensors(string path, float value, string name = "w")
    {
        using var t = torch.full(2, value);
        SafetensorsWriter.Save(path, [new(name, t)]);
    }

    private static void WriteIndex(string path, Dictionary<string, string> weightMap) =>
        File.WriteAllText(path, JsonSerializer.Serialize(new { metadata = new { total_size = 8 }, weight_map = weightMap }));

    [Fact]
    public void Empty_folder_lists_what_was_looked_for()
    {
        using var tmp = new TempFolder();
        File.WriteAllText(tmp.File("config.json"), "{}");
        var ex = Assert.Throws<CheckpointException>(() => CheckpointFiles.OpenFolder(tmp.Path));
        Assert.Contains(tmp.Path, ex.Message);
        foreach (var name in new[] { "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json" })
            Assert.Contains(name, ex.Message);
        Assert.Null(CheckpointFiles.FindInFolder(tmp.Path));

        var missing = Assert.Throws<CheckpointException>(() => CheckpointFiles.OpenFolder(tmp.File("nope")));
        Assert.Contains("folder not found", missing.Message);
    }

    [Fact]
    public void Folder_preference_order_is_safetensors_sharded_safetensors_bin_sharded_bin()
    {
        using var tmp = new TempFolder();

        // Only a sharded .bin.
        foreach (var f in Directory.GetFiles(Fixture("sharded_bin")))
            File.Copy(f, tmp.File(Path.GetFileName(f)));
        using (var s = CheckpointFiles.OpenFolder(tmp.Path))
        {
            Assert.IsType<ShardedCheckpoint>(s);
            Assert.EndsWith("pytorch_model.bin.index.json", s.Description);
        }

        // A single .bin beats it.
        File.Copy(Fixture("state_dict.pt"), tmp.File("pytorch_model.bin"));
        using (var s = CheckpointFiles.OpenFolder(tmp.Path))
        {
            Assert.IsType<PyTorchCheckpointFile>(s);
            Assert.True(s.Contains("dtypes.f32"));
        }

        // Sharded safetensors beats .bin.
        WriteSafetensors(tmp.File("model-00001-of-00001.safetensors"), 3f);
        WriteIndex(tmp.File("model.safetensors.index.json"), new() { ["w"] = "model-00001-of-00001.safetensors" });
        using (var s = CheckpointFiles.OpenFolder(tmp.Path))
        {
            Assert.IsType<ShardedCheckpoint>(s);
            Assert.EndsWith("model.safetensors.index.json", s.Description);
            using var w = s.Read("w");
            Assert.Equal(new float[] { 3, 3 }, w.data<float>().ToArray());
        }

        // A single safetensors beats everything.
        WriteSafetensors(tmp.File("model.safetensors"), 1f);
        using (var s = CheckpointFiles.OpenFolder(tmp.Path))
        {
            Assert.IsType<SafetensorsFile>(s);
            using var w = s.Read("w");
            Assert.Equal(new float[] { 1, 1 }, w.data<float>().ToArray());
        }
        Assert.Equal(tmp.File("model.safetensors"), CheckpointFiles.FindInFolder(tmp.Path));
    }

    [Fact]
    public void Open_dispatches_on_the_file_name()
    {
        using (var a = CheckpointFiles.Open(Fixture("reference.safetensors"))) Assert.IsType<SafetensorsFile>(a);
        using (var b = CheckpointFiles.Open(Fixture("state_dict.pt"))) Assert.IsType<PyTorchCheckpointFile>(b);
        using (var c = CheckpointFiles.Open(Fixture("sharded_bin", "pytorch_model.bin.index.json"))) Assert.IsType<ShardedCheckpoint>(c);
        using (var d = CheckpointFiles.Open(Fixture("sharded_bin"))) Assert.IsType<ShardedCheckpoint>(d); // a folder

        using var tmp = new TempFolder();
        File.Copy(Fixture("state_dict.pt"), tmp.File("weights.data"));
        File.Copy(Fixture("reference.safetensors"), tmp.File("weights.other"));
        using (var e = CheckpointFiles.Open(tmp.File("weights.data"))) Assert.IsType<PyTorchCheckpointFile>(e);
        using (var f = CheckpointFiles.Open(tmp.File("weights.other"))) Assert.IsType<SafetensorsFile>(f);
        var ex = Assert.Throws<CheckpointException>(() => CheckpointFiles.Open(tmp.File("absent.safetensors")));
        Assert.Contains("absent.safetensors", ex.Message);
    }
}

public class ShardedCheckpointTests
{
    [Fact]
    public void Sharded_bin_reads_every_tensor_from_its_shard()
    {
        var expected = LoadExpected(Fixture("sharded_bin", "expected.json"));
        using var s = ShardedCheckpoint.Open(Fixture("sharded_bin", "pytorch_model.bin.index.json"));
        Assert.Equal(2, s.ShardFiles.Count);
        Assert.Equal("72", s.Metadata["total_size"]); // 18 floats
        Assert.Equal(expected.Select(e => e.Name), s.Tensors.Select(t => t.Name));
        foreach (var e in expected)
        {
            Assert.True(s.Contains(e.Name));
            using var t = s.Read(e.Name);
            AssertMatches(e, t);
        }
        var ex = Assert.Throws<CheckpointException>(() => s.Read("nope"));
        Assert.Contains("tensor 'nope'", ex.Message);
        Assert.Contains("pytorch_model.bin.index.json", ex.Message);
    }

    [Fact]
    public void Missing_shard_file_is_named()
    {
        using var tmp = new TempFolder();
        using var t = torch.ones(2);
        SafetensorsWriter.Save(tmp.File("model-00001-of-00002.safetensors"), [new("a", t)]);
        File.WriteAllText(tmp.File("model.safetensors.index.json"), JsonSerializer.Serialize(new
        {
            weight_map = new Dictionary<string, string>
            {
                ["a"] = "model-00001-of-00002.safetensors",
                ["b"] = "model-00002-of-00002.safetensors",
            },
        }));
        var ex = Assert.Throws<CheckpointException>(() => CheckpointFiles.OpenFolder(tmp.Path));
        Assert.Contains("missing shard", ex.Message);
        Assert.Contains("model-00002-of-00002.safetensors", ex.Message);
        Assert.DoesNotContain("model-00001-of-00002.safetensors'", ex.Message);
    }

    [Fact]
    public void Weight_map_pointing_at_the_wrong_shard_and_bad_indexes()
    {
        using var tmp = new TempFolder();
        using var t = torch.ones(2);
        SafetensorsWriter.Save(tmp.File("s1.safetensors"), [new("a", t)]);
        SafetensorsWriter.Save(tmp.File("s2.safetensors"), [new("b", t)]);
        File.WriteAllText(tmp.File("x.index.json"), """{"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}}""");
        using (var s = ShardedCheckpoint.Open(tmp.File("x.index.json")))
        {
            using var a = s.Read("a");
            var ex = Assert.Throws<CheckpointException>(() => s.Read("b"));
            Assert.Contains("tensor 'b'", ex.Message);
            Assert.Contains("s1.safetensors", ex.Message);
            Assert.Throws<CheckpointException>(() => s.Tensors);
        }

        File.WriteAllText(tmp.File("y.index.json"), """{"metadata":{}}""");
        Assert.Contains("weight_map", Assert.Throws<CheckpointException>(() => ShardedCheckpoint.Open(tmp.File("y.index.json"))).Message);
        File.WriteAllText(tmp.File("z.index.json"), """{"weight_map":{"a":"../s1.safetensors"}}""");
        Assert.Contains("inside the index's folder", Assert.Throws<CheckpointException>(() => ShardedCheckpoint.Open(tmp.File("z.index.json"))).Message);
        File.WriteAllText(tmp.File("j.index.json"), "{not json");
        Assert.Contains("not valid JSON", Assert.Throws<CheckpointException>(() => ShardedCheckpoint.Open(tmp.File("j.index.json"))).Message);
    }

    [Fact]
    public void Shards_open_lazily_and_once()
    {
        using var tmp = new TempFolder();
        using var t = torch.ones(2);
        SafetensorsWriter.Save(tmp.File("s1.safetensors"), [new("a", t), new("c", t)]);
        SafetensorsWriter.Save(tmp.File("s2.safetensors"), [new("b", t)]);
        File.WriteAllText(tmp.File("model.safetensors.index.json"),
            """{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s1.safetensors"}}""");
        using var s = ShardedCheckpoint.Open(tmp.File("model.safetensors.index.json"));
        // Corrupt s2 after opening the index: reading from s1 must not touch it.
        File.WriteAllBytes(tmp.File("s2.safetensors"), [0, 0, 0]);
        using (var a = s.Read("a")) Assert.Equal(2, a.numel());
        using (var c = s.Read("c")) Assert.Equal(2, c.numel());
        var ex = Assert.Throws<CheckpointException>(() => s.Read("b"));
        Assert.Contains("s2.safetensors", ex.Message);
    }
}
