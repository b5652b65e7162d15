using System.Text.Json.Nodes;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Text;
using BertHost.Core.Training;

namespace BertHost.Core.Pretraining;

/// <summary>The model a run starts from, its tokenizer, the folder with its vocab.txt and a description (for logs and history).</summary>
public sealed record PretrainStart(BertForMaskedLM Model, BertTextTokenizer Tokenizer, string TokenizerFolder, string Origin);

/// <summary>
/// A pre-training run as a user asks for it (<c>berthost pretrain</c> options, <c>pretrain</c> job fields), null
/// meaning "the default": the one mapping onto <see cref="PretrainingOptions"/>, the one way to build the starting
/// model and the one history layout, so the CLI and the jobs API cannot drift apart. Option names in messages go
/// through <see cref="Name"/> (<c>--config-size</c> on the command line, <c>config_size</c> in a job).
/// </summary>
public sealed record PretrainSetup
{
    public IReadOnlyList<string> Corpus { get; init; } = [];

    /// <summary>Exactly one of <see cref="ConfigSize"/>, <see cref="ConfigFile"/> and <see cref="From"/> says where the model comes from.</summary>
    public string? ConfigSize { get; init; }
    public string? ConfigFile { get; init; }
    public string? From { get; init; }

    /// <summary>Folder with vocab.txt for a fresh model.</summary>
    public string? Vocab { get; init; }

    public int? MaxSteps { get; init; }
    public double? MaxMinutes { get; init; }
    public int? BatchSize { get; init; }
    public int? GradAccum { get; init; }
    public int? SeqLen { get; init; }
    public int? LongSeqLen { get; init; }
    public double? LongFraction { get; init; }
    public double? LearningRate { get; init; }
    public int? Warmup { get; init; }
    public double? WeightDecay { get; init; }
    public double? MaskProb { get; init; }
    public bool WholeWord { get; init; }
    public int? EvalEvery { get; init; }
    public int? EvalSequences { get; init; }
    public int? CheckpointEvery { get; init; }
    public int? LogEvery { get; init; }
    public int? Seed { get; init; }
    public string? Device { get; init; }
    public string? Precision { get; init; }

    /// <summary>How an option (given in snake_case) is spelled in messages.</summary>
    public Func<string, string> Name { get; init; } = n => n;

    /// <summary>The run's settings, the defaults of <see cref="PretrainingOptions"/> where nothing was given.</summary>
    public PretrainingOptions ToOptions(string cacheDirectory, string checkpointDirectory)
    {
        var d = new PretrainingOptions { Corpus = Corpus, CacheDirectory = cacheDirectory, CheckpointDirectory = checkpointDirectory };
        return d with
        {
            MaxSteps = MaxSteps ?? d.MaxSteps,
            MaxMinutes = MaxMinutes ?? d.MaxMinutes,
            BatchSize = BatchSize ?? d.BatchSize,
            GradientAccumulationSteps = GradAccum ?? d.GradientAccumulationSteps,
            SequenceLength = SeqLen ?? d.SequenceLength,
            LongSequenceLength = LongSeqLen ?? d.LongSequenceLength,
            LongPhaseFraction = LongFraction ?? d.LongPhaseFraction,
            LearningRate = LearningRate ?? d.LearningRate,
            WarmupSteps = Warmup ?? d.WarmupSteps,
            WeightDecay = WeightDecay ?? d.WeightDecay,
            MaskProbability = MaskProb ?? d.MaskProbability,
            WholeWordMasking = WholeWord,
            EvalEvery = EvalEvery ?? d.EvalEvery,
            EvalSequences = EvalSequences ?? d.EvalSequences,
            CheckpointEvery = CheckpointEvery ?? d.CheckpointEvery,
            LogEvery = LogEvery ?? d.LogEvery,
            Seed = Seed ?? d.Seed,
            Device = Device ?? d.Device,
            Precision = Precision?.ToLowerInvariant() ?? d.Precision,
        };
    }

    /// <summary>
    /// Why the model source cannot be used, or null: the wrong number of sources, a vocabulary given with
    /// <see cref="From"/>, a fresh model without one, an unknown size. The option at fault comes first.
    /// </summary>
    public (string Option, string Message)? SourceProblem()
    {
        var sources = (From is null ? 0 : 1) + (ConfigSize is null ? 0 : 1) + (ConfigFile is null ? 0 : 1);
        if (sources != 1) return (sources == 0 ? "config_size" : "from", $"give exactly one of {Name("config_size")}, {Name("config")} and {Name("from")}");
        if (From is not null)
            return Vocab is null ? null : ("vocab", $"{Name("vocab")} goes with a fresh model; {Name("from")} uses the folder's own vocabulary");
        if (Vocab is null) return ("vocab", $"a fresh model needs {Name("vocab")} DIR (the folder with vocab.txt)");
        if (ConfigSize is not null && !BertSizes.Names.Contains(ConfigSize, StringComparer.OrdinalIgnoreCase))
            return ("config_size", $"{Name("config_size")}: size '{ConfigSize}' is not one of {string.Join(", ", BertSizes.Names)}");
        return null;
    }

    /// <summary>
    /// The starting model: <see cref="From"/> loaded (a fresh masked-LM head when the folder has none), or a fresh model
    /// of <see cref="ConfigSize"/> / <see cref="ConfigFile"/> over <see cref="Vocab"/>, initialised with the seed.
    /// Throws <see cref="ArgumentException"/> for a <see cref="SourceProblem"/>, and what loading throws
    /// (<see cref="CheckpointException"/>, <see cref="BertConfigException"/>, <see cref="IOException"/>).
    /// </summary>
    public PretrainStart CreateModel()
    {
        if (SourceProblem() is { } problem) throw new ArgumentException(problem.Message);
        var seed = ToOptions("", "").Seed;
        if (From is not null)
        {
            var tokenizer = BertTextTokenizer.FromFolder(From);
            var (model, report) = MaskedLMCheckpoint.Load(From, seed);
            return new PretrainStart(model, tokenizer, Path.GetFullPath(From), $"continuing {Path.GetFullPath(From)}" + (report.HeadLoaded ? "" : " (new masked-LM head)"));
        }
        var tok = BertTextTokenizer.FromFolder(Vocab!);
        var config = ConfigSize is not null ? BertSizes.Create(ConfigSize, tok.VocabSize) : BertConfig.Load(ConfigFile!) with { VocabSize = tok.VocabSize };
        return new PretrainStart(BertForMaskedLM.CreateRandom(config, seed), tok, Path.GetFullPath(Vocab!),
            $"fresh {ConfigSize ?? Path.GetFullPath(ConfigFile!)} model (seed {seed})");
    }

    /// <summary>Token caches: <c>$BERTHOST_CACHE_DIR</c>, else <c>$XDG_CACHE_HOME/berthost/tokens</c> or <c>~/.cache/berthost/tokens</c>.</summary>
    public static string DefaultCacheDirectory()
    {
        if (Environment.GetEnvironmentVariable("BERTHOST_CACHE_DIR") is { Length: > 0 } dir) return dir;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = xdg is { Length: > 0 } ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "berthost", "tokens");
    }

    /// <summary>history.json/.csv/.svg of a run: one point per loss-curve point (x axis: step), the options and the corpus files.</summary>
    public static TrainingHistory History(PretrainResult result, PretrainingOptions options, string origin, string outDir)
    {
        var points = result.Curve.Select(p =>
        {
            var metrics = new Dictionary<string, double> { ["learning_rate"] = p.LearningRate, ["tokens_seen"] = p.TokensSeen };
            if (p.EvalLoss is { } l) metrics["eval_loss"] = l;
            if (p.MaskedAccuracy is { } a) metrics["masked_accuracy"] = a;
            return new EpochResult((int)p.Step, p.TrainLoss, metrics, p.Seconds);
        }).ToList();
        var info = new Dictionary<string, JsonNode?>
        {
            ["kind"] = "pretrain",
            ["model"] = origin,
            ["out"] = outDir,
            ["steps"] = result.Steps,
            ["completed"] = result.Completed,
            ["stop_reason"] = result.StopReason,
            ["tokens_per_second"] = Math.Round(result.TokensPerSecond, 1),
            ["tokens_seen"] = result.TokensSeen,
            ["corpus_tokens"] = result.CorpusTokens,
            ["train_sequences"] = result.TrainSequences,
            ["train_seconds"] = Math.Round(result.TrainSeconds, 1),
            ["pretrain_options"] = new JsonObject
            {
                ["max_steps"] = options.MaxSteps,
                ["batch_size"] = options.BatchSize,
                ["grad_accum"] = options.GradientAccumulationSteps,
                ["seq_len"] = options.SequenceLength,
                ["long_seq_len"] = options.LongSequenceLength,
                ["lr"] = options.LearningRate,
                ["warmup_steps"] = options.EffectiveWarmupSteps,
                ["weight_decay"] = options.WeightDecay,
                ["mask_probability"] = options.MaskProbability,
                ["whole_word_masking"] = options.WholeWordMasking,
                ["seed"] = options.Seed,
                ["device"] = options.Device,
                ["precision"] = options.Precision,
            },
        };
        var data = options.Corpus.Select(f => TrainingDataFile.Describe("corpus", f)).ToList();
        return new TrainingHistory(points, "masked_accuracy", data: data, info: info) { XAxis = "step" };
    }
}
