using BertHost.Core.Bert;
using BertHost.Core.Pretraining;
using BertHost.Core.Text;

namespace BertHost.Tests.Pretraining;

/// <summary>Dropout draws from libtorch's global generator, which the Pretrainer re-seeds per micro-batch; tests in
/// other classes that draw from it at the same time would change the losses, so these run alone.</summary>
[CollectionDefinition(nameof(GlobalTorchRandom), DisableParallelization = true)]
public sealed class GlobalTorchRandom;

[Collection(nameof(GlobalTorchRandom))]
public sealed class PretrainerTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-pretrain-");
    private static readonly string ModelFolder = TokenCacheTests.ModelFolder;
    private static readonly BertTextTokenizer Tokenizer = BertTextTokenizer.FromFolder(ModelFolder);

    // A very small body: the tests measure behaviour, not quality.
    private static readonly BertConfig Tiny = new()
    {
        VocabSize = Tokenizer.VocabSize, HiddenSize = 32, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 64,
        MaxPositionEmbeddings = 64,
    };

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>A corpus with strong regularities (fixed sentences in random order), so a few steps learn something.</summary>
    private string Corpus()
    {
        var path = Path.Combine(_dir.FullName, "corpus.txt");
        if (File.Exists(path)) return path;
        string[] sentences =
        [
            "the old man went to the city with his dog .", "she said no to the man .", "the dog is very happy today .",
            "we will see what happens in the city next week .", "the quick brown fox jumped over the lazy dog .",
        ];
        var rng = new Random(1);
        using var writer = new StreamWriter(path);
        for (var d = 0; d < 150; d++)
        {
            for (var l = 0; l < 1 + rng.Next(4); l++)
                writer.WriteLine(string.Join(" ", Enumerable.Range(0, 1 + rng.Next(3)).Select(_ => sentences[rng.Next(sentences.Length)])));
            writer.WriteLine();
        }
        return path;
    }

    private PretrainingOptions Options(string name, int maxSteps) => new()
    {
        Corpus = [Corpus()],
        CacheDirectory = Path.Combine(_dir.FullName, "cache"),
        CheckpointDirectory = Path.Combine(_dir.FullName, name),
        MaxSteps = maxSteps,
        BatchSize = 8,
        SequenceLength = 32,
        LearningRate = 3e-3,
        WarmupSteps = 2,
        EvalEvery = 0,
        EvalSequences = 16,
        CheckpointEvery = 0,
        LogEvery = 5,
        Device = "cpu",
        Seed = 11,
    };

    private static PretrainResult Run(PretrainingOptions options, IProgress<PretrainProgress>? progress = null, CancellationToken token = default)
    {
        using var model = BertForMaskedLM.CreateRandom(Tiny, seed: 3);
        return new Pretrainer(model, Tokenizer, ModelFolder, options).Run(progress, token);
    }

    [Fact]
    public void A_short_run_on_a_tiny_config_lowers_the_mlm_loss()
    {
        var result = Run(Options("falls", maxSteps: 60));
        Assert.True(result.Completed);
        Assert.Equal(60, result.StepLosses.Count);
        var first = result.StepLosses.Take(5).Average();
        var last = result.StepLosses.TakeLast(10).Average();
        // Uniform guessing over 405 tokens is ln 405 = 6.0; the corpus's word frequencies alone give about 3.
        Assert.InRange(first, 5.0, 6.5);
        Assert.True(last < first - 1.5, $"loss {first:F3} -> {last:F3}");
        Assert.NotNull(result.EvalLoss);
        Assert.True(result.EvalLoss < first - 1.5, $"held-out loss {result.EvalLoss}");
        Assert.InRange(result.MaskedAccuracy!.Value, 0.03, 1.0);   // chance: 1/405
        Assert.Equal([5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60], result.Curve.Select(p => (int)p.Step));
        Assert.True(result.TokensPerSecond > 0);
        // Full sequences, except the corpus's last one (shorter) whenever the shuffled order draws it.
        Assert.InRange(result.TokensSeen, 60L * 8 * 32 - 2 * 32, 60L * 8 * 32);
    }

    [Fact]
    public void A_resumed_run_gives_the_same_loss_curve_as_an_uninterrupted_one()
    {
        var straight = Run(Options("straight", maxSteps: 12));

        var options = Options("interrupted", maxSteps: 12);
        using var cts = new CancellationTokenSource();
        var stopAt = new SynchronousProgress(p =>
        {
            if (p.Phase == PretrainPhase.Training && p.Step == 5) cts.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() => Run(options, stopAt, cts.Token));
        Assert.True(File.Exists(Path.Combine(options.CheckpointDirectory, "state.json")));

        var resumed = Run(options);
        Assert.True(resumed.Resumed);
        Assert.True(resumed.Completed);
        Assert.Equal(12, resumed.StepLosses.Count);
        for (var i = 0; i < 12; i++)
            Assert.True(Math.Abs(straight.StepLosses[i] - resumed.StepLosses[i]) <= 1e-6,
                $"step {i + 1}: {straight.StepLosses[i]} uninterrupted vs {resumed.StepLosses[i]} resumed");
        Assert.Equal(straight.EvalLoss!.Value, resumed.EvalLoss!.Value, 6);
        Assert.Equal(straight.TokensSeen, resumed.TokensSeen);
    }

    [Fact]
    public void A_time_budget_stops_cleanly_with_a_checkpoint_and_changed_settings_refuse_to_resume()
    {
        var options = Options("budget", maxSteps: 50) with { MaxMinutes = 1e-6 };
        var result = Run(options);
        Assert.False(result.Completed);
        Assert.Contains("time budget", result.StopReason);
        Assert.True(File.Exists(Path.Combine(options.CheckpointDirectory, "model", "model.safetensors")));
        // No temporary or previous checkpoint folder is left beside it.
        Assert.DoesNotContain(Directory.GetDirectories(_dir.FullName), d => Path.GetFileName(d).StartsWith("budget.", StringComparison.Ordinal));

        var e = Assert.Throws<ArgumentException>(() => Run(options with { BatchSize = 4, MaxMinutes = null }));
        Assert.Contains("batch_size 8 → 4", e.Message);
    }

    [Fact]
    public void Bad_settings_are_refused_naming_the_option()
    {
        using var model = BertForMaskedLM.CreateRandom(Tiny, seed: 3);
        var e = Assert.Throws<ArgumentException>(() => new Pretrainer(model, Tokenizer, ModelFolder, Options("x", 10) with { Precision = "bf16" }));
        Assert.Contains("precision bf16: mixed-precision training needs autocast", e.Message);
        e = Assert.Throws<ArgumentException>(() => new Pretrainer(model, Tokenizer, ModelFolder, Options("x", 10) with { SequenceLength = 128 }));
        Assert.Contains("exceeds the model's max_position_embeddings (64)", e.Message);
    }

    private sealed class SynchronousProgress(Action<PretrainProgress> report) : IProgress<PretrainProgress>
    {
        public void Report(PretrainProgress value) => report(value);
    }
}
