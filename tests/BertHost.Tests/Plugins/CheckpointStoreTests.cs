using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Tests.Support;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Plugins;

public class CheckpointStoreTests
{
    private static string Model(string name) => ReferenceOutputs.ModelFolder(name);

    [Fact]
    public void A_task_model_whose_bert_weights_are_the_bodys_has_the_bodys_fingerprint()
    {
        var store = new CheckpointStore();
        Assert.Equal(TinyBert.Fingerprint, store.BodyFingerprint(Model("tiny-bert-seqcls")));
        Assert.Equal(TinyBert.Fingerprint, store.BodyFingerprint(Model("tiny-bert")));
    }

    [Fact]
    public void Other_body_weights_give_another_fingerprint()
    {
        var other = new CheckpointStore().BodyFingerprint(Model("tiny-bert-seqcls-other"));
        Assert.StartsWith("sha256:", other);
        Assert.NotEqual(TinyBert.Fingerprint, other);
    }

    [Fact]
    public void A_folder_without_vocab_uses_the_served_vocabulary()
    {
        var folder = TempFolder();
        foreach (var f in new[] { "config.json", "model.safetensors" })
            File.Copy(Path.Combine(Model("tiny-bert-seqcls"), f), Path.Combine(folder, f));

        var served = new CheckpointStore(Path.Combine(Model("tiny-bert"), "vocab.txt"));
        Assert.Equal(TinyBert.Fingerprint, served.BodyFingerprint(folder));
        var e = Assert.Throws<BodyLoadException>(() => new CheckpointStore().BodyFingerprint(folder));
        Assert.Contains("has no vocab.txt", e.Message);
    }

    [Fact]
    public void Unreadable_folders_are_body_load_errors_naming_the_file()
    {
        var e = Assert.Throws<BodyLoadException>(() => new CheckpointStore().BodyFingerprint(Model("broken/no-weights")));
        Assert.Contains("no weights found", e.Message);
    }

    [Fact]
    public void Save_list_and_read_round_trip()
    {
        var store = new CheckpointStore();
        var path = Path.Combine(TempFolder(), "head.safetensors");
        using var w = arange(6, ScalarType.Float32).reshape(2, 3);
        using var b = ones(2, ScalarType.BFloat16);
        store.Save(path, new Dictionary<string, Tensor> { ["classifier.weight"] = w, ["classifier.bias"] = b }, new Dictionary<string, string> { ["format"] = "pt" });

        Assert.Equal(["classifier.bias", "classifier.weight"], store.ListTensors(path).Order());
        var read = store.Read(path, n => n.EndsWith("weight"));
        Assert.Equal(["classifier.weight"], read.Keys);
        using var r = read["classifier.weight"];
        Assert.True(r.eq(w).all().item<bool>());

        Assert.Equal(["classifier.bias", "classifier.weight"], store.ListTensors(Model("tiny-bert-seqcls")).Where(n => n.StartsWith("classifier.")).Order());
    }
}
