using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Tests.Plugins;
using BertHost.Core.Training;
using static TorchSharp.torch;
using BertHost.Core.Body;

namespace BertHost.Tests.Training;

// Seeded runs with thresholds: alone, so no parallel test draws from torch's generator in between.
[Collection(SeededTorchCollection.Name)]
public class TrainerTests
{
    private static Dictionary<string, Tensor> Copy(BertBody body) =>
        body.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    private static List<string> Changed(BertBody body, Dictionary<string, Tensor> before) =>
        body.Model.named_parameters().Where(p => !p.parameter.eq(before[p.name]).all().item<bool>()).Select(p => p.name).ToList();

    [Fact]
    public void Head_mode_learns_the_labels_keeps_the_body_bit_identical_and_caches_body_outputs()
    {
        using var body = TrainingData.LoadBody();
        using var head = TrainingData.Head(body);
        var train = TrainingData.Examples(head, TrainingData.WriteJsonl(48, seed: 1));
        var before = Copy(body);
        var trainer = new Trainer(body, head, new TrainingOptions { Epochs = 20, BatchSize = 8, LearningRate = 1e-2, WeightDecay = 0, Seed = 7 });
        var chance = trainer.Evaluate(train)["accuracy"];
        var passesBefore = trainer.BodyPasses;

        var reports = new List<TrainingProgress>();
        var result = trainer.Train(train, train, new SyncProgress(reports.Add));

        Assert.Equal(20, result.Epochs.Count);
        Assert.True(result.Epochs[^1].TrainLoss < result.Epochs[0].TrainLoss * 0.7, string.Join(", ", result.Epochs.Select(e => e.TrainLoss)));
        var accuracy = trainer.Evaluate(train)["accuracy"];
        Assert.True(accuracy >= 0.85, $"accuracy {accuracy} (before training {chance})");
        Assert.Empty(Changed(body, before));
        // The cache is filled before epoch 1 in length-sorted passes within a token budget: the 48 examples (the eval
        // set is the same examples) fit one pass; the epochs and their evaluations run no body pass.
        Assert.Equal(passesBefore + 1, result.BodyPasses);
        Assert.Equal(120, reports.Count);
        Assert.Equal(120, reports[^1].TotalSteps);
        Assert.True(reports.All(r => r.Loss > 0 && r.ExamplesPerSecond > 0));
    }

    [Fact]
    public void Without_the_cache_every_batch_runs_the_body()
    {
        using var body = TrainingData.LoadBody();
        using var head = TrainingData.Head(body);
        var train = TrainingData.Examples(head, TrainingData.WriteJsonl(16, seed: 2));
        var trainer = new Trainer(body, head, new TrainingOptions { Epochs = 2, BatchSize = 8, UseFeatureCache = false });
        var result = trainer.Train(train);
        Assert.Equal(4, result.BodyPasses);
    }

    [Fact]
    public void Partial_mode_changes_only_the_top_layer_and_the_pooler_and_full_mode_changes_the_whole_body()
    {
        using var body = TrainingData.LoadBody();
        using var head = TrainingData.Head(body);
        var train = TrainingData.Examples(head, TrainingData.WriteJsonl(16, seed: 3));
        var before = Copy(body);
        new Trainer(body, head, new TrainingOptions { Mode = TrainingMode.Partial, PartialLayers = 1, Epochs = 1, BatchSize = 8, LearningRate = 1e-3, WarmupRatio = 0 }).Train(train);
        var changed = Changed(body, before);
        Assert.NotEmpty(changed);
        Assert.All(changed, name => Assert.True(name.StartsWith("encoder.layer.1.") || name.StartsWith("pooler."), name));
        Assert.Contains(changed, n => n.StartsWith("encoder.layer.1."));
        Assert.True(body.Model.parameters().All(p => p.requires_grad), "requires_grad is restored");

        var mid = Copy(body);
        new Trainer(body, head, new TrainingOptions { Mode = TrainingMode.Full, Epochs = 1, BatchSize = 8, LearningRate = 1e-3, WarmupRatio = 0 }).Train(train);
        var changedFull = Changed(body, mid);
        Assert.Contains(changedFull, n => n.StartsWith("embeddings."));
        Assert.Contains(changedFull, n => n.StartsWith("encoder.layer.0."));
        Assert.False(body.Model.training);
    }

    [Fact]
    public void Early_stopping_stops_when_the_metric_cannot_improve_and_keeps_the_best_epoch()
    {
        using var body = TrainingData.LoadBody();
        using var head = TrainingData.Head(body);
        var train = TrainingData.Examples(head, TrainingData.WriteJsonl(8, seed: 4));
        // Learning rate 0: the metric never changes, so it never improves after epoch 1.
        var result = new Trainer(body, head, new TrainingOptions { Epochs = 10, BatchSize = 4, LearningRate = 0, EarlyStoppingPatience = 2 })
            .Train(train, train);
        Assert.True(result.StoppedEarly);
        Assert.Equal(3, result.Epochs.Count);
        Assert.Equal(1, result.BestEpoch);
        Assert.All(result.Epochs, e => Assert.NotNull(e.Metrics));
    }

    [Fact]
    public void Multitask_trains_two_heads_on_one_body_and_the_saved_body_and_heads_predict_as_in_memory()
    {
        using var body = TrainingData.LoadBody();
        using var sentiment = TrainingData.Head(body);
        using var topic = TrainingData.TopicHead(body);
        var sentimentData = TrainingData.Examples(sentiment, TrainingData.WriteJsonl(32, seed: 31));
        var topicData = TrainingData.Examples(topic, TrainingData.WriteTopicJsonl(48, seed: 32));
        var before = Copy(body);
        var trainer = new Trainer(body, [sentiment, topic], new TrainingOptions { Mode = TrainingMode.Full, Epochs = 20, BatchSize = 8, LearningRate = 3e-3, Seed = 3 });
        var chance = (trainer.Evaluate(sentiment, sentimentData)["accuracy"], trainer.Evaluate(topic, topicData)["accuracy"]);
        var steps = new List<TrainingProgress>();
        var result = trainer.Train([new TrainingTask(sentiment, sentimentData, sentimentData), new TrainingTask(topic, topicData, topicData)],
            new SyncProgress(steps.Add));

        // 4 sentiment + 6 topic steps per epoch, interleaved.
        Assert.Equal(200, steps.Count);
        Assert.Equal(80, steps.Count(p => p.Task == "sentiment"));
        Assert.Equal(120, steps.Count(p => p.Task == "topic"));
        Assert.NotEqual(Enumerable.Repeat("sentiment", 4).Concat(Enumerable.Repeat("topic", 6)), steps.Take(10).Select(p => p.Task));
        foreach (var task in new[] { "sentiment", "topic" })
        {
            var losses = result.Epochs.Select(e => e.Tasks![task].TrainLoss).ToList();
            Assert.True(losses[^1] < losses[0] * 0.7, $"{task}: {string.Join(", ", losses)}");
        }
        var best = result.Epochs[result.BestEpoch!.Value - 1];
        Assert.Equal((best.Metrics!["sentiment.accuracy"] + best.Metrics["topic.accuracy"]) / 2, best.Metrics[TrainingMetrics.MeanPrimary], 1e-12);
        Assert.Equal(result.Epochs.Max(e => e.Metrics![TrainingMetrics.MeanPrimary]), result.BestMetrics![TrainingMetrics.MeanPrimary]);
        var accuracy = (trainer.Evaluate(sentiment, sentimentData)["accuracy"], trainer.Evaluate(topic, topicData)["accuracy"]);
        Assert.True(accuracy.Item1 >= 0.85 && accuracy.Item2 >= 0.85, $"accuracy {accuracy} (before training {chance})");
        Assert.Equal(accuracy.Item1, best.Metrics["sentiment.accuracy"]);
        Assert.Contains(Changed(body, before), n => n.StartsWith("embeddings."));

        // The body as a Hugging Face folder and each head with its weights reload and give the same logits.
        var dir = HeadTestSupport.TempFolder();
        ModelFolderWriter.Save(body.Model, body.Folder, Path.Combine(dir, "body"));
        var fingerprint = BodyFingerprint.Compute(body.Model, Path.Combine(body.Folder, "vocab.txt"));
        sentiment.Save(Path.Combine(dir, "sentiment"), new HeadSaveInfo(fingerprint));
        topic.Save(Path.Combine(dir, "topic"), new HeadSaveInfo(fingerprint));
        using var loaded = BertBody.Load(Path.Combine(dir, "body"), new BodyOptions { Device = "cpu" });
        Assert.Equal(fingerprint, loaded.Fingerprint);
        using var sentiment2 = TrainingData.Head(loaded, weights: Path.Combine(dir, "sentiment"));
        using var topic2 = TrainingData.TopicHead(loaded, weights: Path.Combine(dir, "topic"));
        foreach (var (h1, h2, data) in new[] { (sentiment, sentiment2, sentimentData), (topic, topic2, topicData) })
        {
            var (_, inMemory) = HeadTestSupport.Run(body, h1, data);
            var (_, reloaded) = HeadTestSupport.Run(loaded, h2, data);
            Assert.True((inMemory - reloaded).abs().max().item<float>() <= 1e-5);
        }
    }

    [Fact]
    public void Bf16_precision_trains_the_body_with_float32_master_weights_close_to_fp32_and_fp16_is_refused()
    {
        List<double> Run(TrainingPrecision precision)
        {
            using var body = TrainingData.LoadBody();
            using var head = TrainingData.Head(body);
            var train = TrainingData.Examples(head, TrainingData.WriteJsonl(32, seed: 41));
            var trainer = new Trainer(body, head, new TrainingOptions { Mode = TrainingMode.Full, Epochs = 15, BatchSize = 8, LearningRate = 3e-3, Precision = precision });
            Assert.Equal(precision, trainer.Precision);
            var losses = trainer.Train(train, train).Epochs.Select(e => e.TrainLoss).ToList();
            Assert.All(body.Model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
            Assert.All(head.Module.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
            return losses;
        }
        var fp32 = Run(TrainingPrecision.Fp32);
        var bf16 = Run(TrainingPrecision.Bf16);
        Assert.True(bf16[^1] < bf16[0] * 0.7, string.Join(", ", bf16));
        // bfloat16 keeps 8 bits of mantissa: the first epoch's loss agrees with float32 to about 1e-2.
        Assert.Equal(fp32[0], bf16[0], 2e-2);
        Assert.NotEqual(fp32[0], bf16[0]);

        using var b = TrainingData.LoadBody();
        using var h = TrainingData.Head(b);
        var e = Assert.Throws<ArgumentException>(() => new Trainer(b, h, new TrainingOptions { Precision = TrainingPrecision.Fp16 }));
        Assert.Equal("precision fp16 needs loss scaling (a gradient scaler), which TorchSharp 0.107 does not provide; use bf16", e.Message);
        // auto: bf16 where the CPU has native bfloat16 arithmetic, else fp32.
        var flags = File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags")).Split(' ');
        var native = flags.Contains("avx512_bf16") || flags.Contains("amx_bf16");
        Assert.Equal(native ? TrainingPrecision.Bf16 : TrainingPrecision.Fp32, new Trainer(b, h, new TrainingOptions { Precision = TrainingPrecision.Auto }).Precision);
    }

    [Fact]
    public void The_cache_fill_runs_length_sorted_passes_within_the_budget_reports_progress_and_matches_uncached_training()
    {
        using var body = TrainingData.LoadBody();
        var data = TrainingData.WriteJsonl(300, seed: 4);
        var evalData = TrainingData.WriteJsonl(40, seed: 5);
        EpochResult Run(bool cache, out long passes, List<FeatureCacheProgress> fills)
        {
            using var head = TrainingData.Head(body);
            var trainer = new Trainer(body, head, new TrainingOptions { Epochs = 2, BatchSize = 16, LearningRate = 1e-2, Seed = 3, UseFeatureCache = cache });
            var result = trainer.Train(TrainingData.Examples(head, data), TrainingData.Examples(head, evalData), new BothProgress(fills.Add));
            passes = result.BodyPasses;
            return result.Epochs[^1];
        }
        var fills = new List<FeatureCacheProgress>();
        var cached = Run(cache: true, out var cachedPasses, fills);
        // 340 short examples (at most 6 tokens each): the 256-row cap cuts them into two passes, and the last report
        // says all of them are done.
        Assert.Equal(2, cachedPasses);
        Assert.Equal(340, fills[^1].Total);
        Assert.Equal(340, fills[^1].Done);
        Assert.True(fills[^1].ExamplesPerSecond > 0);
        Assert.Equal(TimeSpan.Zero, fills[^1].Eta);

        // The independent path: no cache, every batch runs the ordinary padded body pass. Same losses and metrics
        // (to float rounding: the padding-skipping pass gives real tokens the same values).
        var uncached = Run(cache: false, out var uncachedPasses, []);
        Assert.True(uncachedPasses > 2);
        Assert.Equal(uncached.TrainLoss, cached.TrainLoss, 4);
        Assert.Equal(uncached.Metrics!["accuracy"], cached.Metrics!["accuracy"], 6);
    }

    private sealed class BothProgress(Action<FeatureCacheProgress> fill) : IProgress<TrainingProgress>, IProgress<FeatureCacheProgress>
    {
        public void Report(TrainingProgress value) { }
        public void Report(FeatureCacheProgress value) => fill(value);
    }

    private sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
