using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Pretraining;
using BertHost.Core.Serving;
using Microsoft.Extensions.Logging;
using BertHost.Core.Backends;

namespace BertHost.Core.Jobs;

/// <summary>
/// <c>pretrain</c> jobs: masked-LM pre-training (<see cref="Pretrainer"/>, the same run as <c>berthost pretrain</c>,
/// set up by the same <see cref="PretrainSetup"/>) while the host keeps serving. The model is a fresh one
/// (<c>config_size</c> / <c>config</c>, over the served body's vocabulary unless <c>vocab</c> says otherwise) or
/// loaded from a folder (<c>from</c>; <c>"served"</c> = the served body's folder, loaded into a copy: the served body is
/// never touched). The checkpoint lives in the job's folder, so a restarted host resumes the run; the result is a
/// Hugging Face <c>BertForMaskedLM</c> folder in <c>JOB/body</c>, served as the body only when promoted.
/// </summary>
public sealed class PretrainJobWork : IJobWork
{
    public const string KindName = "pretrain";

    /// <summary><c>from</c> value that continues from the body being served.</summary>
    public const string Served = "served";

    /// <summary>Token caches of pretrain jobs, shared by all jobs of the deployment (a hidden folder of the jobs directory: no job's).</summary>
    public const string CacheFolder = ".token-cache";

    public string Kind => KindName;

    public IReadOnlyList<string> Fields { get; } =
    [
        "corpus", "config_size", "config", "vocab", "from", "max_steps", "max_minutes", "batch_size", "grad_accum", "seq_len",
        "long_seq_len", "long_fraction", "learning_rate", "warmup", "weight_decay", "mask_prob", "whole_word", "eval_every",
        "eval_sequences", "checkpoint_every", "log_every", "seed", "precision", "promote",
    ];

    // The option names PretrainingOptions.Problems() uses that differ from this kind's field names.
    private static readonly Dictionary<string, string> ProblemFields = new(StringComparer.Ordinal)
    {
        ["lr"] = "learning_rate",
        ["mask_probability"] = "mask_prob",
    };

    public JobRecord Prepare(JobRequest request, JobEnvironment environment, JobIdentity identity)
    {
        var engine = environment.Engine;
        var files = new JobData(environment.Settings, identity.Folder);
        var corpus = files.Files(request, "corpus", "corpus", required: true)!;

        // Model sources: the record shows the client's names; the paths they resolved to stay in its sources.
        var sources = new Dictionary<string, string>(StringComparer.Ordinal);
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        string? from = null;
        string? servedFingerprint = null;
        if (request.Raw("from") is { ValueKind: JsonValueKind.String } f && f.GetString() == Served)
        {
            from = engine.Body.Folder;
            servedFingerprint = engine.Body.Fingerprint;
            names["from"] = Served;
        }
        else if (files.Folder(request, "from") is { } folder)
        {
            (from, names["from"]) = folder;
        }
        var configData = files.File(request, "config", "config", required: false);
        if (from is not null && request.Raw("vocab") is not null)
            throw new ServingException(ServingError.InvalidInput, "vocab goes with a fresh model; from uses the folder's own vocabulary", "vocab");
        var vocabFolder = files.Folder(request, "vocab");
        request.CheckUploadsUsed();
        var configFile = configData?.Path;
        if (configData is not null) names["config"] = configData.Name!;
        var vocab = vocabFolder?.Path;
        if (vocabFolder is { } vf) names["vocab"] = vf.Name;
        if (from is not null) sources["from"] = from;
        if (vocab is not null) sources["vocab"] = vocab;
        var setup = new PretrainSetup
        {
            Corpus = corpus.Select(c => c.Path).ToList(),
            ConfigSize = request.String("config_size"),
            ConfigFile = configFile,
            From = from,
            // A fresh body speaks the deployment's vocabulary unless told otherwise, so the deployment's heads can train on it.
            Vocab = vocab ?? (from is null ? engine.Body.Folder : null),
            MaxSteps = request.Int("max_steps", 1, 100_000_000),
            MaxMinutes = request.Number("max_minutes", 0),
            BatchSize = request.Int("batch_size", 1, 1_000_000),
            GradAccum = request.Int("grad_accum", 1, 100_000),
            SeqLen = request.Int("seq_len", 8, 1_000_000),
            LongSeqLen = request.Int("long_seq_len", 8, 1_000_000),
            LongFraction = request.Number("long_fraction", 0, 1),
            LearningRate = request.Number("learning_rate", 0, 10),
            Warmup = request.Int("warmup", 0),
            WeightDecay = request.Number("weight_decay", 0, 10),
            MaskProb = request.Number("mask_prob", 0, 1),
            WholeWord = request.Bool("whole_word") ?? false,
            EvalEvery = request.Int("eval_every", 0),
            EvalSequences = request.Int("eval_sequences", 1, 1_000_000),
            CheckpointEvery = request.Int("checkpoint_every", 0),
            LogEvery = request.Int("log_every", 1),
            Seed = request.Int("seed", 0),
            Device = engine.Config.Body.Device,
            Precision = request.String("precision"),
        };
        if (setup.Vocab is not null) sources["vocab"] = setup.Vocab;
        var options = setup.ToOptions(CacheDirectory(environment), "checkpoint");
        if (options.Problems() is [var problem, ..]) throw Problem(problem);
        if (setup.SourceProblem() is { } source) throw new ServingException(ServingError.InvalidInput, source.Message, source.Option);
        CheckModelSource(setup, options, engine, names);

        var json = OptionsJson(setup, options);
        foreach (var key in new[] { "from", "config", "vocab" }) json[key] = names.GetValueOrDefault(key);
        // A fresh model on the served body's vocabulary: say so without naming the served folder.
        if (vocab is null && from is null) json["vocab"] = Served;
        return new JobRecord
        {
            Id = identity.Id,
            Kind = KindName,
            Folder = identity.Folder,
            Created = identity.Created,
            Options = json,
            Data = configData is null ? corpus : [.. corpus, configData],
            Sources = sources,
            TotalSteps = options.MaxSteps,
            BodyFingerprint = servedFingerprint,
            Promote = TrainJobWork.Promote(request, identity, environment.Settings.BodySwap == "auto"),
            SubmittedBy = identity.SubmittedBy,
        };
    }

    /// <summary>A problem from <see cref="PretrainingOptions.Problems"/> as a 422 naming this kind's field.</summary>
    private static ServingException Problem(string problem)
    {
        var end = problem.IndexOfAny([' ', ':']);
        var option = end < 0 ? problem : problem[..end];
        var field = ProblemFields.GetValueOrDefault(option, option);
        return new ServingException(ServingError.InvalidInput, field + problem[option.Length..], field);
    }

    /// <summary>What can be checked of the starting model without building it: its folders and config exist and its positions fit the sequences.</summary>
    private static void CheckModelSource(PretrainSetup setup, PretrainingOptions options, IServedModels engine, IReadOnlyDictionary<string, string> names)
    {
        string field;
        BertConfig config;
        if (setup.From is { } from)
        {
            field = "from";
            if (!File.Exists(Path.Combine(from, "config.json")))
                throw new ServingException(ServingError.InvalidInput, $"from: '{names["from"]}' is not a model folder (no config.json)", field);
            if (!File.Exists(Path.Combine(from, "vocab.txt")))
                throw new ServingException(ServingError.InvalidInput, $"from: '{names["from"]}' has no vocab.txt", field);
            config = LoadConfig(field, Path.Combine(from, "config.json"));
        }
        else
        {
            if (!File.Exists(Path.Combine(setup.Vocab!, "vocab.txt")))
                throw new ServingException(ServingError.InvalidInput, $"vocab: '{names.GetValueOrDefault("vocab", Served)}' has no vocab.txt", "vocab");
            field = setup.ConfigSize is not null ? "config_size" : "config";
            config = setup.ConfigSize is { } size ? BertSizes.Create(size, 1) : LoadConfig(field, setup.ConfigFile!);
        }
        var longest = options.LongSequenceLength ?? options.SequenceLength;
        if (longest > config.MaxPositionEmbeddings)
            throw new ServingException(ServingError.InvalidInput,
                $"{(options.LongSequenceLength is null ? "seq_len" : "long_seq_len")} {longest} exceeds the model's max_position_embeddings ({config.MaxPositionEmbeddings})",
                options.LongSequenceLength is null ? "seq_len" : "long_seq_len");
        if (options.Precision == "tf32" && DeviceSelection.ResolveDevice(options.Device).type != TorchSharp.DeviceType.CUDA)
            throw new ServingException(ServingError.InvalidInput, $"precision tf32 needs a CUDA device; the body runs on {engine.Config.Body.Device}", "precision");
    }

    /// <summary>A config.json read for a check; what is wrong with it is said without the file's content or path.</summary>
    private static BertConfig LoadConfig(string field, string path)
    {
        try
        {
            using var stream = IO.RegularFile.OpenRead(path, 1 << 20);
            return BertConfig.Load(path);
        }
        catch (Exception e) when (e is BertConfigException or IOException or UnauthorizedAccessException or JsonException)
        {
            throw new ServingException(ServingError.InvalidInput, $"{field}: not a usable BERT config.json ({(e is BertConfigException ? "a field is missing or out of range" : "it cannot be read as JSON")})", field);
        }
    }

    private static string CacheDirectory(JobEnvironment environment) => Path.Combine(environment.Settings.Directory, CacheFolder);

    /// <summary>The run as recorded: the model source (paths resolved) and every setting with its default filled in.</summary>
    private static JsonObject OptionsJson(PretrainSetup s, PretrainingOptions o) => new()
    {
        ["config_size"] = s.ConfigSize,
        ["config"] = s.ConfigFile,
        ["from"] = s.From,
        ["vocab"] = s.Vocab,
        ["max_steps"] = o.MaxSteps,
        ["max_minutes"] = o.MaxMinutes,
        ["batch_size"] = o.BatchSize,
        ["grad_accum"] = o.GradientAccumulationSteps,
        ["seq_len"] = o.SequenceLength,
        ["long_seq_len"] = o.LongSequenceLength,
        ["long_fraction"] = o.LongPhaseFraction,
        ["learning_rate"] = o.LearningRate,
        ["warmup"] = o.EffectiveWarmupSteps,
        ["weight_decay"] = o.WeightDecay,
        ["mask_prob"] = o.MaskProbability,
        ["whole_word"] = o.WholeWordMasking,
        ["eval_every"] = o.EvalEvery,
        ["eval_sequences"] = o.EvalSequences,
        ["checkpoint_every"] = o.CheckpointEvery,
        ["log_every"] = o.LogEvery,
        ["seed"] = o.Seed,
        ["device"] = o.Device,
        ["precision"] = o.Precision,
    };

    /// <summary>The setup from the record (so a job resumed after a restart runs exactly as submitted).</summary>
    public static PretrainSetup SetupOf(JobRecord record)
    {
        var o = record.Options;
        return new PretrainSetup
        {
            Corpus = record.Data.Where(d => d.Role == "corpus").Select(d => d.Path).ToList(),
            ConfigSize = (string?)o["config_size"],
            ConfigFile = record.Data.FirstOrDefault(d => d.Role == "config")?.Path ?? Rooted((string?)o["config"]),
            // Records written before sources were kept hold the paths in the options.
            From = record.Sources.GetValueOrDefault("from") ?? Rooted((string?)o["from"]),
            Vocab = record.Sources.GetValueOrDefault("vocab") ?? Rooted((string?)o["vocab"]),
            MaxSteps = (int)o["max_steps"]!,
            MaxMinutes = (double?)o["max_minutes"],
            BatchSize = (int)o["batch_size"]!,
            GradAccum = (int)o["grad_accum"]!,
            SeqLen = (int)o["seq_len"]!,
            LongSeqLen = (int?)o["long_seq_len"],
            LongFraction = (double)o["long_fraction"]!,
            LearningRate = (double)o["learning_rate"]!,
            Warmup = (int)o["warmup"]!,
            WeightDecay = (double)o["weight_decay"]!,
            MaskProb = (double)o["mask_prob"]!,
            WholeWord = (bool)o["whole_word"]!,
            EvalEvery = (int)o["eval_every"]!,
            EvalSequences = (int)o["eval_sequences"]!,
            CheckpointEvery = (int)o["checkpoint_every"]!,
            LogEvery = (int)o["log_every"]!,
            Seed = (int)o["seed"]!,
            Device = (string?)o["device"],
            Precision = (string?)o["precision"],
        };
    }

    private static string? Rooted(string? path) => path is not null && Path.IsPathRooted(path) ? path : null;

    public void Run(JobContext context, CancellationToken cancellationToken)
    {
        var record = context.Record;
        var logger = context.Environment.Loggers.CreateLogger($"BertHost.Jobs.{record.Id}");
        TrainJobWork.CheckDataUnchanged(record);
        var setup = SetupOf(record);
        var options = setup.ToOptions(CacheDirectory(context.Environment), Path.Combine(context.Folder, TrainJobWork.CheckpointFolder));
        var start = setup.CreateModel();
        using var model = start.Model;
        var pretrainer = new Pretrainer(model, start.Tokenizer, start.TokenizerFolder, options)
        {
            PointRecorded = point =>
            {
                context.Update(r =>
                {
                    // A resumed run records its points again from the checkpoint on: one entry per step.
                    r.Curve ??= [];
                    r.Curve.RemoveAll(p => p.Step >= point.Step);
                    r.Curve.Add(point);
                }, persistNow: point.EvalLoss is not null);
                context.EpochEnded?.Invoke((int)point.Step);
            },
        };
        context.Update(r => r.Curve ??= [], persistNow: true);
        var progress = new Progress(context);
        var result = pretrainer.Run(progress, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested();
        if (result.Resumed) logger.LogInformation("job {Job} resumed from its checkpoint", record.Id);

        var bodyFolder = Path.Combine(context.Folder, "body");
        AtomicFolder.Replace(bodyFolder, temp => pretrainer.SaveModel(temp,
            new Dictionary<string, string> { ["berthost.pretrain_steps"] = result.Steps.ToString(CultureInfo.InvariantCulture) }));
        var fingerprint = BodyFingerprint.Compute(model.bert, Path.Combine(bodyFolder, "vocab.txt"));
        PretrainSetup.History(result, options, start.Origin, bodyFolder).WriteTo(context.Folder);
        context.Update(r =>
        {
            // The result's curve is complete even when the host died between a checkpoint and the record's update.
            r.Curve = result.Curve.ToList();
            r.Step = (int)result.Steps;
            r.StopReason = result.StopReason;
            r.StoppedEarly = !result.Completed;
            r.ResumedFrom = result.Resumed ? new JobResumePoint(0, (int)(progress.FirstStep - 1 ?? result.Steps)) : null;
            r.OutputFingerprint = fingerprint;
            r.EtaSeconds = 0;
        }, persistNow: true);
    }

    /// <summary>Serves the job's body (heads trained on the old body become stale).</summary>
    public async Task PromoteAsync(JobContext context)
    {
        var body = Path.Combine(context.Folder, "body");
        await context.Environment.Engine.SwapBodyAsync(body, new Dictionary<string, string>(), context.Record.Id);
        context.RecordPromotion(body, new Dictionary<string, string>());
    }

    /// <summary>Step progress into the record (persisted by the runner at most every few seconds).</summary>
    private sealed class Progress(JobContext context) : IProgress<PretrainProgress>
    {
        /// <summary>The first step this run trained (a resumed run starts after its checkpoint's step).</summary>
        public long? FirstStep { get; private set; }

        public void Report(PretrainProgress p)
        {
            if (p.Phase != PretrainPhase.Training) return;
            FirstStep ??= p.Step;
            context.Update(r =>
            {
                r.Step = (int)p.Step;
                r.TotalSteps = (int)p.TotalSteps;
                r.Loss = p.Loss;
                r.TokensPerSecond = Math.Round(p.TokensPerSecond, 1);
                r.EtaSeconds = Math.Round(p.Eta.TotalSeconds, 1);
            });
        }
    }
}
