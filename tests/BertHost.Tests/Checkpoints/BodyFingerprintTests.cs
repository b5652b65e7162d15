using BertHost.Core.Bert;
using BertHost.Core.Body;
using BertHost.Core.Checkpoints;
using BertHost.Tests.Support;

namespace BertHost.Tests.Checkpoints;

/// <summary>Fingerprints read from a checkpoint's tensors (no model built) against those of a model loaded from it.</summary>
public class BodyFingerprintTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_parameter_list_is_the_models_own(bool pooler)
    {
        var config = new BertConfig { VocabSize = 40, HiddenSize = 24, NumHiddenLayers = 3, NumAttentionHeads = 2, IntermediateSize = 40, MaxPositionEmbeddings = 20, TypeVocabSize = 3 };
        using var model = new BertModel(config, addPoolingLayer: pooler);
        var expected = model.named_parameters().Select(p => (p.name, string.Join(",", p.parameter.shape))).ToList();
        var listed = BertParameters.Of(config, pooler).Select(p => (p.Name, string.Join(",", p.Shape))).ToList();
        Assert.Equal(expected, listed);
    }

    [Theory]
    [InlineData("tiny-bert")]
    [InlineData("tiny-bert-f16")]
    [InlineData("tiny-bert-bf16")]
    [InlineData("tiny-bert-legacy-names")]
    [InlineData("tiny-bert-legacy-format")]
    [InlineData("tiny-bert-sharded")]
    [InlineData("tiny-bert-no-pooler")]
    [InlineData("tiny-bert-tokcls")]
    public void Reading_the_tensors_gives_the_loaded_bodys_fingerprints(string name)
    {
        var folder = ReferenceOutputs.ModelFolder(name);
        using var body = BertBody.Load(folder, new BodyOptions { Device = "cpu" });
        var store = new CheckpointStore();
        Assert.Equal(body.Fingerprint, store.BodyFingerprint(folder));
        Assert.Equal(body.EncoderFingerprint, store.BodyFingerprint(folder, encoderOnly: true));
    }

    [Fact]
    public void A_checkpoint_that_does_not_fit_its_config_is_refused_as_loading_would()
    {
        var folder = Path.Combine(Path.GetTempPath(), "berthost-tests", "fingerprint-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        var source = ReferenceOutputs.ModelFolder("tiny-bert");
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        var config = BertConfig.Load(Path.Combine(folder, "config.json"));
        File.WriteAllText(Path.Combine(folder, "config.json"), (config with { NumHiddenLayers = config.NumHiddenLayers + 1 }).ToJson());

        var viaModel = Assert.Throws<BodyLoadException>(() => BertBody.Load(folder, new BodyOptions { Device = "cpu" }));
        var viaTensors = Assert.Throws<BodyLoadException>(() => new CheckpointStore().BodyFingerprint(folder));
        Assert.Contains("body weight(s) missing: encoder.layer.", viaTensors.Message);
        Assert.Equal(viaModel.Message, viaTensors.Message);
    }
}
