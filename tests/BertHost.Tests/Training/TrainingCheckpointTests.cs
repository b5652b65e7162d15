using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Training;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Training;

[Collection(SeededTorchCollection.Name)]
public class TrainingCheckpointTests
{
    // Full mode with tiny-bert's dropout (0.1) on: the resumed run must draw the same dropout masks and shuffles.
    private static TrainingOptions Options(string? dir, int? every = null) => new()
    {
        Mode = TrainingMode.Full, Epochs = 3, BatchSize = 8, LearningRate = 1e-3, Seed = 11,
        CheckpointDirectory = dir, CheckpointEverySteps = every,
    };

    private sealed record Run(TrainingResult? Result, Dictionary<string, Tensor> Weights, Exception? Error);

    /// <summary>A fresh body and head (same initial weights every time), trained on the same 24 examples.</summary>
    private static Run Train(TrainingOptions options, string data, Func<Trainer, CancellationTokenSource, (IProgress<TrainingProgress>?, Action<EpochResult>?)>? hooks = null)
    {
        using var body = TrainingData.LoadBody();
        manual_seed(5);
        using var head = TrainingData.Head(body);
        var examples = TrainingData.Examples(head, data);
        var trainer = new Trainer(body, head, options);
        using var cts = new CancellationTokenSource();
        var (progress, epochDone) = hooks?.Invoke(trainer, cts) ?? (null, null);
        TrainingResult? result = null;
        Exception? error = null;
        try
        {
            result = trainer.Train(examples, examples, progress, cts.Token, epochDone);
        }
        catch (Exception e) when (e is OperationCanceledException or TrainingCheckpointException)
        {
            error = e;
        }
        var weights = head.Module.named_parameters().Select(p => ("head." + p.name, p.parameter))
            .Concat(body.Model.named_parameters().Select(p => ("body." + p.name, p.parameter)))
            .ToDictionary(p => p.Item1, p => p.Item2.detach().clone());
        return new Run(result, weights, error);
    }

    private static void AssertSameRun(Run expected, Run actual)
    {
        Assert.NotNull(expected.Result);
        Assert.NotNull(actual.Result);
        Assert.Equal(expected.Result!.Epochs.Count, actual.Result!.Epochs.Count);
        for (var i = 0; i < expected.Result.Epochs.Count; i++)
        {
            Assert.Equal(expected.Result.Epochs[i].TrainLoss, actual.Result.Epochs[i].TrainLoss, 1e-6);
            foreach (var (k, v) in expected.Result.Epochs[i].Metrics!) Assert.Equal(v, actual.Result.Epochs[i].Metrics![k], 1e-6);
        }
        Assert.Equal(expected.Result.BestEpoch, actual.Result.BestEpoch);
        foreach (var (k, v) in expected.Weights)
        {
            var diff = (v - actual.Weights[k]).abs().max().item<float>();
            Assert.True(diff <= 1e-6, $"{k} differs by {diff}");
        }
    }

    private static (IProgress<TrainingProgress>?, Action<EpochResult>?) CancelAfterEpoch(CancellationTokenSource cts, int epoch) =>
        (null, e => { if (e.Epoch == epoch) cts.Cancel(); });

    [Fact]
    public void A_run_cancelled_after_an_epoch_resumes_to_the_same_losses_metrics_and_weights()
    {
        var data = TrainingData.WriteJsonl(24, seed: 21);
        var dir = Path.Combine(TempFolder(), "ckpt");
        var uninterrupted = Train(Options(null), data);

        var first = Train(Options(dir), data, (_, cts) => CancelAfterEpoch(cts, 1));
        Assert.IsAssignableFrom<OperationCanceledException>(first.Error);
        Assert.True(TrainingCheckpoint.Exists(dir));
        var info = TrainingCheckpoint.Describe(dir)!;
        Assert.Equal((2, 0, 3, 1), (info.Epoch, info.StepInEpoch, info.GlobalStep, info.CompletedEpochs));

        var resumed = Train(Options(dir), data);
        Assert.Null(resumed.Error);
        Assert.Equal(2, resumed.Result!.ResumedFromEpoch);
        Assert.Equal(0, resumed.Result.ResumedFromStep);
        AssertSameRun(uninterrupted, resumed);
        Assert.Null(uninterrupted.Result!.ResumedFromEpoch);

        // The finished run's checkpoint resumes to the same result without training again.
        var again = Train(Options(dir), data);
        Assert.Equal(4, again.Result!.ResumedFromEpoch);
        AssertSameRun(uninterrupted, again);
        Assert.Single(Directory.GetFiles(dir, "*.safetensors"));
    }

    [Fact]
    public void A_run_cancelled_mid_epoch_resumes_from_the_last_step_checkpoint()
    {
        var data = TrainingData.WriteJsonl(24, seed: 22);
        var dir = Path.Combine(TempFolder(), "ckpt");
        var uninterrupted = Train(Options(null), data);

        // Checkpoints every 2 steps; cancelled after step 5 (epoch 2, step 2 of 3): the checkpoint of step 4 is the last.
        var first = Train(Options(dir, every: 2), data, (_, cts) => (new SyncProgress(p => { if (p.Step == 5) cts.Cancel(); }), null));
        Assert.IsAssignableFrom<OperationCanceledException>(first.Error);
        Assert.Equal((2, 1, 4), (TrainingCheckpoint.Describe(dir)!.Epoch, TrainingCheckpoint.Describe(dir)!.StepInEpoch, TrainingCheckpoint.Describe(dir)!.GlobalStep));

        var resumed = Train(Options(dir, every: 2), data);
        Assert.Equal((2, 1), (resumed.Result!.ResumedFromEpoch, resumed.Result.ResumedFromStep));
        AssertSameRun(uninterrupted, resumed);
    }

    [Fact]
    public void A_checkpoint_without_its_state_file_is_ignored_and_one_missing_its_weights_is_rejected()
    {
        var data = TrainingData.WriteJsonl(24, seed: 23);
        var dir = Path.Combine(TempFolder(), "ckpt");
        Train(Options(dir), data, (_, cts) => CancelAfterEpoch(cts, 1));

        var weights = Directory.GetFiles(dir, "*.safetensors").Single();
        File.Delete(weights);
        var missing = Train(Options(dir), data);
        var error = Assert.IsType<TrainingCheckpointException>(missing.Error);
        Assert.Equal($"{Path.Combine(dir, TrainingCheckpoint.StateFile)} names {Path.GetFileName(weights)}, which is missing: the checkpoint is incomplete", error.Message);

        // A crash before the state file was written leaves no checkpoint: the run starts from scratch.
        File.Delete(Path.Combine(dir, TrainingCheckpoint.StateFile));
        File.WriteAllText(Path.Combine(dir, "checkpoint-00000009-partial.safetensors"), "half a file");
        Assert.False(TrainingCheckpoint.Exists(dir));
        var fresh = Train(Options(dir), data);
        Assert.Null(fresh.Result!.ResumedFromEpoch);
        AssertSameRun(Train(Options(null), data), fresh);

        File.WriteAllText(Path.Combine(dir, TrainingCheckpoint.StateFile), "{ not json");
        var corrupt = Assert.IsType<TrainingCheckpointException>(Train(Options(dir), data).Error);
        Assert.StartsWith($"{Path.Combine(dir, TrainingCheckpoint.StateFile)} is not a valid training checkpoint: ", corrupt.Message);
    }

    [Fact]
    public void Resuming_with_other_options_or_data_is_rejected_naming_what_differs()
    {
        var data = TrainingData.WriteJsonl(24, seed: 24);
        var dir = Path.Combine(TempFolder(), "ckpt");
        Train(Options(dir), data, (_, cts) => CancelAfterEpoch(cts, 1));

        var options = Assert.IsType<TrainingCheckpointException>(Train(Options(dir) with { BatchSize = 4, LearningRate = 2e-3 }, data).Error);
        Assert.Equal($"the checkpoint in {dir} belongs to a different run: options.batch_size: checkpoint 8, this run 4; "
            + "options.learning_rate: checkpoint 0.001, this run 0.002", options.Message);

        var other = Assert.IsType<TrainingCheckpointException>(Train(Options(dir), TrainingData.WriteJsonl(24, seed: 25)).Error);
        Assert.Contains("tasks[0].train.sha256: checkpoint \"", other.Message);
        Assert.Contains("tasks[0].eval.sha256: checkpoint \"", other.Message);
    }

    [Fact]
    public void A_multitask_run_cancelled_mid_epoch_resumes_to_the_same_result()
    {
        var sentimentData = TrainingData.WriteJsonl(16, seed: 26);
        var topicData = TrainingData.WriteTopicJsonl(24, seed: 27);
        var dir = Path.Combine(TempFolder(), "ckpt");
        (TrainingResult? Result, Dictionary<string, float[]> Weights, Exception? Error) Run(string? checkpoints, int cancelAtStep = 0)
        {
            using var body = TrainingData.LoadBody();
            using var sentiment = TrainingData.Head(body);
            using var topic = TrainingData.TopicHead(body);
            var trainer = new Trainer(body, [sentiment, topic], Options(checkpoints, every: checkpoints is null ? null : 1) with { Mode = TrainingMode.Partial, PartialLayers = 1 });
            using var cts = new CancellationTokenSource();
            TrainingResult? result = null;
            Exception? error = null;
            try
            {
                var s = TrainingData.Examples(sentiment, sentimentData);
                var t = TrainingData.Examples(topic, topicData);
                result = trainer.Train([new TrainingTask(sentiment, s, s), new TrainingTask(topic, t, t)],
                    new SyncProgress(p => { if (p.Step == cancelAtStep) cts.Cancel(); }), cts.Token);
            }
            catch (OperationCanceledException e)
            {
                error = e;
            }
            var weights = sentiment.Module.named_parameters().Select(p => ("sentiment." + p.name, p.parameter))
                .Concat(topic.Module.named_parameters().Select(p => ("topic." + p.name, p.parameter)))
                .Concat(body.Model.named_parameters().Select(p => ("body." + p.name, p.parameter)))
                .ToDictionary(p => p.Item1, p => p.Item2.detach().cpu().flatten().data<float>().ToArray());
            return (result, weights, error);
        }

        var uninterrupted = Run(null);
        Assert.IsAssignableFrom<OperationCanceledException>(Run(dir, cancelAtStep: 7).Error);
        var resumed = Run(dir);
        Assert.Equal((2, 2), (resumed.Result!.ResumedFromEpoch, resumed.Result.ResumedFromStep));
        Assert.Equal(uninterrupted.Result!.Epochs.Count, resumed.Result.Epochs.Count);
        for (var e = 0; e < uninterrupted.Result.Epochs.Count; e++)
        {
            foreach (var task in new[] { "sentiment", "topic" })
                Assert.Equal(uninterrupted.Result.Epochs[e].Tasks![task].TrainLoss, resumed.Result.Epochs[e].Tasks![task].TrainLoss, 1e-6);
            Assert.Equal(uninterrupted.Result.Epochs[e].Metrics![TrainingMetrics.MeanPrimary], resumed.Result.Epochs[e].Metrics![TrainingMetrics.MeanPrimary], 1e-6);
        }
        foreach (var (k, v) in uninterrupted.Weights)
            Assert.True(v.Zip(resumed.Weights[k]).All(p => Math.Abs(p.First - p.Second) <= 1e-6), k);
    }

    private sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
