using BertHost.Abstractions.Heads;
using BertHost.Core.Body;
using BertHost.Core.Checkpoints;
using BertHost.Core.Lora;
using BertHost.Core.Training;
using BertHost.Tests.Support;
using BertHost.Tests.Training;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Lora;

[Collection(SeededTorchCollection.Name)]
public class LoraTrainingTests
{
    private static TrainingOptions Options(string? dir = null, int epochs = 3) => new()
    {
        Mode = TrainingMode.Lora, Epochs = epochs, BatchSize = 8, LearningRate = 1e-2, Seed = 11, CheckpointDirectory = dir,
        Lora = new LoraSettings(4, 8, 0.1),
    };

    private sealed record Run(TrainingResult? Result, Dictionary<string, Tensor> Weights, Exception? Error, List<string> BodyChanged, IReadOnlyDictionary<string, double> Accuracy);

    private static Run Train(TrainingOptions options, string data, int? cancelAfterEpoch = null, string? saveTo = null)
    {
        using var body = TrainingData.LoadBody();
        var before = body.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        manual_seed(5);
        using var head = TrainingData.Head(body);
        var examples = TrainingData.Examples(head, data);
        var trainer = new Trainer(body, head, options);
        var adapter = trainer.Adapters[head.Name];
        using var cts = new CancellationTokenSource();
        TrainingResult? result = null;
        Exception? error = null;
        try
        {
            result = trainer.Train(examples, examples, null, cts.Token, e => { if (e.Epoch == cancelAfterEpoch) cts.Cancel(); });
        }
        catch (OperationCanceledException e)
        {
            error = e;
        }
        var weights = head.Module.named_parameters().Select(p => ("head." + p.name, p.parameter))
            .Concat(adapter.NamedParameters().Select(p => ("lora." + p.Key, p.Parameter)))
            .ToDictionary(p => p.Item1, p => p.Item2.detach().clone());
        var changed = body.Model.named_parameters().Where(p => !p.parameter.eq(before[p.name]).all().item<bool>()).Select(p => p.name).ToList();
        var accuracy = trainer.Evaluate(examples);
        if (saveTo is not null)
        {
            head.Save(saveTo, new HeadSaveInfo(body.Fingerprint, result?.BestMetrics));
            LoraHeadFolder.Attach(saveTo, adapter);
        }
        adapter.Dispose();
        return new Run(result, weights, error, changed, accuracy);
    }

    [Fact]
    public void Lora_mode_trains_the_adapter_and_the_head_and_leaves_the_body_bit_identical()
    {
        var data = TrainingData.WriteJsonl(48, seed: 31);
        var run = Train(Options(epochs: 12), data);
        Assert.Empty(run.BodyChanged);
        Assert.True(run.Accuracy["accuracy"] >= 0.85, $"accuracy {run.Accuracy["accuracy"]}");
        // The adapters moved away from their initial B = 0 (so they took part in the fit).
        Assert.Contains(run.Weights, kv => kv.Key.EndsWith(".lora_B.weight") && kv.Value.abs().max().item<float>() > 1e-4);
        Assert.True(run.Result!.Epochs[^1].TrainLoss < run.Result.Epochs[0].TrainLoss);
    }

    [Fact]
    public void A_cancelled_lora_run_resumes_to_the_same_adapter_head_and_metrics()
    {
        var data = TrainingData.WriteJsonl(24, seed: 21);
        var dir = Path.Combine(TempFolder(), "ckpt");
        var uninterrupted = Train(Options(), data);
        var first = Train(Options(dir), data, cancelAfterEpoch: 1);
        Assert.IsAssignableFrom<OperationCanceledException>(first.Error);
        var resumed = Train(Options(dir), data);
        Assert.Equal(2, resumed.Result!.ResumedFromEpoch);
        for (var i = 0; i < 3; i++) Assert.Equal(uninterrupted.Result!.Epochs[i].TrainLoss, resumed.Result.Epochs[i].TrainLoss, 1e-6);
        foreach (var (k, v) in uninterrupted.Weights)
            Assert.True((v - resumed.Weights[k]).abs().max().item<float>() <= 1e-6, k);
    }

    [Fact]
    public void A_saved_lora_head_folder_loads_in_the_plugin_and_gives_back_the_adapter()
    {
        var data = TrainingData.WriteJsonl(16, seed: 41);
        var folder = Path.Combine(TempFolder(), "head");
        var run = Train(Options(epochs: 1), data, saveTo: folder);
        var settings = LoraHeadFolder.ReadSettings(folder)!;
        Assert.Equal((4, 8.0, 0.1), (settings.Rank, settings.Alpha, settings.Dropout));
        using var body = TrainingData.LoadBody();
        // The plugin loads the folder as any head folder: the lora/ tensors never reach it.
        using var head = TrainingData.Head(body, weights: folder);
        using var adapter = LoraHeadFolder.Read(folder, body.Model)!;
        foreach (var (key, p) in adapter.NamedParameters())
            Assert.True(p.eq(run.Weights["lora." + key]).all().item<bool>(), key);
        using var file = SafetensorsFile.Open(Path.Combine(folder, HeadManifest.WeightsFileName));
        Assert.Contains(file.Tensors, t => t.Name == "lora/encoder.layer.0.attention.self.query.lora_A.weight");
    }

    [Fact]
    public void Head_mode_on_a_lora_head_reads_the_body_with_its_frozen_adapter_through_the_feature_cache_too()
    {
        var data = TrainingData.WriteJsonl(24, seed: 51);
        var folder = Path.Combine(TempFolder(), "head");
        Train(Options(epochs: 4), data, saveTo: folder);
        double LossOfOneFrozenEpoch(bool cache, bool withAdapter)
        {
            using var body = TrainingData.LoadBody();
            using var head = TrainingData.Head(body, weights: folder);
            using var adapter = LoraHeadFolder.Read(folder, body.Model)!;
            var examples = TrainingData.Examples(head, data);
            var options = new TrainingOptions { Mode = TrainingMode.Head, Epochs = 1, BatchSize = 8, LearningRate = 0, Seed = 11, UseFeatureCache = cache };
            var adapters = withAdapter ? new Dictionary<string, LoraAdapter> { [head.Name] = adapter } : null;
            return new Trainer(body, head, options, adapters).Train(examples, null, null, CancellationToken.None).Epochs[0].TrainLoss;
        }
        var uncached = LossOfOneFrozenEpoch(cache: false, withAdapter: true);
        Assert.Equal(uncached, LossOfOneFrozenEpoch(cache: true, withAdapter: true), 1e-5);
        // The adapter matters to this head: without it the loss is another.
        Assert.True(Math.Abs(uncached - LossOfOneFrozenEpoch(cache: false, withAdapter: false)) > 1e-4);
    }

    [Fact]
    public void Lora_refuses_bf16_and_targets_that_match_nothing()
    {
        using var body = TrainingData.LoadBody();
        using var head = TrainingData.Head(body);
        var bf16 = Assert.Throws<ArgumentException>(() => new Trainer(body, head, Options() with { Precision = TrainingPrecision.Bf16 }));
        Assert.StartsWith("precision bf16 is not available in lora mode", bf16.Message);
        var none = Assert.Throws<ArgumentException>(() => new Trainer(body, head, Options() with { Lora = new LoraSettings(Targets: ["classifier"]) }));
        Assert.StartsWith("lora targets classifier match no Linear", none.Message);
    }
}
