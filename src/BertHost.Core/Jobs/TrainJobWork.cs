using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Serving;
using BertHost.Core.Training;
using Microsoft.Extensions.Logging;

namespace BertHost.Core.Jobs;

/// <summary>
/// <c>train</c> jobs: one head of the deployment trained with <see cref="Trainer"/> while the host keeps serving.
/// Head mode trains a NEW instance of the head on the served body (frozen; read-only forward passes, as serving does);
/// partial and full mode train a private copy of the body loaded from its folder. Outputs go to the job's folder
/// (<c>head/</c>, and <c>body/</c> for partial/full), each written whole to a temporary folder and renamed.
/// </summary>
public sealed class TrainJobWork : IJobWork
{
    public const string KindName = "train";

    public string Kind => KindName;

    public IReadOnlyList<string> Fields { get; } =
    [
        "head", "train", "eval", "mode", "epochs", "batch_size", "learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm",
        "gradient_accumulation_steps", "seed", "partial_layers", "patience", "eval_every_epoch", "checkpoint_every", "precision", "format",
        "skip_malformed", "promote",
    ];

    /// <summary>The job folder's checkpoint sub-folder: the trainer resumes from it after an interruption.</summary>
    public const string CheckpointFolder = "checkpoint";

    public JobRecord Prepare(JobRequest request, JobEnvironment environment, JobIdentity identity)
    {
        var engine = environment.Engine;
        var head = request.String("head", required: true)!;
        var section = engine.FindSection(head)
            ?? throw new ServingException(ServingError.UnknownHead, $"no head named '{head}' (heads: {string.Join(", ", engine.Config.Heads.Select(h => h.Name))})", "head");
        if (engine.TrainingRefusal(section.Name) is { } refusal) throw new ServingException(ServingError.InvalidInput, refusal, "head");

        var mode = Parse(request.String("mode") ?? "head", TrainingOptions.ParseMode, "mode");
        var layers = engine.Body.Config.NumHiddenLayers;
        var options = new TrainingOptions
        {
            Mode = mode,
            Epochs = request.Int("epochs", 1, 100_000) ?? 3,
            BatchSize = request.Int("batch_size", 1, 1_000_000) ?? 16,
            LearningRate = request.Number("learning_rate", 0, 10),
            WeightDecay = request.Number("weight_decay", 0, 10) ?? 0.01,
            WarmupRatio = request.Number("warmup_ratio", 0, 1) ?? 0.1,
            MaxGradNorm = request.Number("max_grad_norm", 0) ?? 1.0,
            GradientAccumulationSteps = request.Int("gradient_accumulation_steps", 1, 100_000) ?? 1,
            Seed = request.Int("seed", 0) ?? 42,
            PartialLayers = request.Int("partial_layers", 1, layers) ?? 1,
            EarlyStoppingPatience = request.Int("patience", 1),
            EvalEveryEpoch = request.Bool("eval_every_epoch") ?? true,
            CheckpointEverySteps = request.Int("checkpoint_every", 1),
            Precision = Parse(request.String("precision") ?? "fp32", TrainingOptions.ParsePrecision, "precision"),
        };

        var format = request.String("format");
        var skipMalformed = request.Bool("skip_malformed") ?? false;
        var data = new List<TrainingDataFile> { DataFile(request, "train", required: true, environment.BaseDirectory)! };
        if (DataFile(request, "eval", required: false, environment.BaseDirectory) is { } eval) data.Add(eval);
        var promote = request.Bool("promote") ?? (mode == TrainingMode.Head || environment.Settings.BodySwap == "auto");

        var json = options.ToJson();
        json.Remove("mode");
        json["checkpoint_every"] = options.CheckpointEverySteps;
        json["format"] = format;
        json["skip_malformed"] = skipMalformed;
        return new JobRecord
        {
            Id = identity.Id,
            Kind = KindName,
            Folder = identity.Folder,
            Created = identity.Created,
            Head = section.Name,
            Mode = mode.ToString().ToLowerInvariant(),
            Options = json,
            Data = data,
            Epochs = options.Epochs,
            Promote = promote,
        };
    }

    private static T Parse<T>(string text, Func<string, T> parse, string field)
    {
        try
        {
            return parse(text);
        }
        catch (ArgumentException e)
        {
            throw new ServingException(ServingError.InvalidInput, e.Message, field);
        }
    }

    /// <summary>A data file of the submission: resolved against the deployment's folder, present and readable (422 naming the field otherwise), hashed.</summary>
    private static TrainingDataFile? DataFile(JobRequest request, string field, bool required, string baseDirectory)
    {
        var text = request.String(field, required);
        return text is null ? null : DataFile(field, field, text, baseDirectory);
    }

    /// <summary>The file <paramref name="text"/> (relative to the deployment's folder) described for the record as <paramref name="role"/>; 422 naming <paramref name="field"/> when it is missing or unreadable.</summary>
    internal static TrainingDataFile DataFile(string field, string role, string text, string baseDirectory)
    {
        var path = ResolvePath(field, text, baseDirectory);
        if (!File.Exists(path))
            throw new ServingException(ServingError.InvalidInput, $"{field}: file not found: {path}", field);
        try
        {
            return TrainingDataFile.Describe(role, path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ServingException(ServingError.InvalidInput, $"{field}: cannot read {path}: {e.Message}", field);
        }
    }

    /// <summary>A path of a submission, resolved against the deployment's folder (422 naming the field when it is not a path).</summary>
    internal static string ResolvePath(string field, string text, string baseDirectory)
    {
        try
        {
            return Path.GetFullPath(Path.Combine(baseDirectory, text));
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new ServingException(ServingError.InvalidInput, $"{field}: not a valid path '{text}'", field);
        }
    }

    /// <summary>The trainer's settings from the record (so a job resumed after a restart runs exactly as submitted).</summary>
    public static TrainingOptions OptionsOf(JobRecord record)
    {
        var o = record.Options;
        return new TrainingOptions
        {
            Mode = TrainingOptions.ParseMode(record.Mode ?? "head"),
            Epochs = (int)o["epochs"]!,
            BatchSize = (int)o["batch_size"]!,
            LearningRate = (double)o["learning_rate"]!,
            WeightDecay = (double)o["weight_decay"]!,
            WarmupRatio = (double)o["warmup_ratio"]!,
            MaxGradNorm = (double)o["max_grad_norm"]!,
            GradientAccumulationSteps = (int)o["gradient_accumulation_steps"]!,
            Seed = (int)o["seed"]!,
            PartialLayers = (int)o["partial_layers"]!,
            EarlyStoppingPatience = (int?)o["early_stopping_patience"],
            EvalEveryEpoch = (bool)o["eval_every_epoch"]!,
            UseFeatureCache = (bool?)o["feature_cache"] ?? true,
            CheckpointEverySteps = (int?)o["checkpoint_every"],
            Precision = TrainingOptions.ParsePrecision((string?)o["precision"] ?? "fp32"),
            CheckpointDirectory = Path.Combine(record.Folder, CheckpointFolder),
        };
    }

    public void Run(JobContext context, CancellationToken cancellationToken)
    {
        var record = context.Record;
        var engine = context.Environment.Engine;
        var logger = context.Environment.Loggers.CreateLogger($"BertHost.Jobs.{record.Id}");
        var options = OptionsOf(record);
        CheckDataUnchanged(record);

        using var lease = engine.AcquireBody();
        var served = lease.Body;
        // Partial and full mode change the body: they train a private copy, never the served one.
        var own = options.Mode == TrainingMode.Head ? null
            : DeploymentLoading.LoadBody(engine.Config with { Body = engine.Config.Body with { Checkpoint = served.Folder } });
        try
        {
            var body = own ?? served;
            context.Update(r => r.BodyFingerprint = served.Fingerprint, persistNow: true);
            using var head = engine.CreateHead(record.Head!, body, engine.ServedWeights(record.Head!));
            var dataOptions = new TrainingDataOptions
            {
                Format = (string?)record.Options["format"],
                SkipMalformed = (bool?)record.Options["skip_malformed"] ?? false,
                SkippedRecords = (file, line, reason) => logger.LogWarning("{File}:{Line}: skipped: {Reason}", file, line, reason),
            };
            var train = Read(head, record.Data.Single(d => d.Role == "train"), dataOptions);
            var evalFile = record.Data.FirstOrDefault(d => d.Role == "eval");
            var eval = evalFile is null ? null : Read(head, evalFile, dataOptions);

            var trainer = new Trainer(body, head, options);
            var result = trainer.Train(train, eval, new Progress(context), cancellationToken, epoch =>
            {
                context.Update(r => AddEpoch(r, epoch), persistNow: true);
                context.EpochEnded?.Invoke(epoch.Epoch);
            });
            cancellationToken.ThrowIfCancellationRequested();
            if (result.ResumedFromEpoch is { } resumedEpoch)
            {
                logger.LogInformation("job {Job} resumed from its checkpoint at epoch {Epoch}, step {Step}", record.Id, resumedEpoch, result.ResumedFromStep);
                context.Update(r => r.ResumedFrom = new JobResumePoint(resumedEpoch, result.ResumedFromStep ?? 0));
            }

            var fingerprint = served.Fingerprint;
            if (own is not null)
            {
                WriteFolder(Path.Combine(context.Folder, "body"), temp => ModelFolderWriter.Save(own.Model, own.Folder, temp));
                fingerprint = BodyFingerprint.Compute(own.Model, Path.Combine(own.Folder, "vocab.txt"));
            }
            var metrics = result.BestMetrics ?? result.Epochs[^1].Metrics;
            WriteFolder(Path.Combine(context.Folder, "head"), temp => head.Save(temp, new HeadSaveInfo(fingerprint, metrics)));
            var info = new Dictionary<string, JsonNode?>
            {
                ["job"] = record.Id,
                ["head"] = record.Head,
                ["kind"] = head.Kind,
                ["body"] = served.Folder,
                ["body_fingerprint"] = fingerprint,
                ["train_examples"] = train.Count,
                ["eval_examples"] = eval?.Count ?? 0,
                ["best_epoch"] = result.BestEpoch,
                ["stopped_early"] = result.StoppedEarly,
                ["out"] = context.Folder,
            };
            new TrainingHistory(result.Epochs, head.Training!.CreateMetric().Primary, options, record.Data, info).WriteTo(context.Folder);
            context.Update(r =>
            {
                // The trainer's list is complete even when the host died between a checkpoint and the record's update.
                r.EpochResults = result.Epochs.Select(e => new JobEpoch(e.Epoch, e.TrainLoss, e.Metrics, Math.Round(e.Seconds, 3))).ToList();
                r.BestEpoch = result.BestEpoch;
                r.BestMetrics = metrics;
                r.StoppedEarly = result.StoppedEarly;
                r.OutputFingerprint = fingerprint;
                r.EtaSeconds = 0;
            }, persistNow: true);
        }
        finally
        {
            own?.Dispose();
        }
    }

    public async Task PromoteAsync(JobContext context)
    {
        var record = context.Record;
        var engine = context.Environment.Engine;
        var headFolder = Path.Combine(context.Folder, "head");
        if (record.Mode == "head")
        {
            var served = engine.Body.Fingerprint;
            if (record.OutputFingerprint != served)
                throw new ServingException(ServingError.Conflict,
                    $"job {record.Id} trained head {record.Head} on body {record.OutputFingerprint}, the served body is {served}; submit a new job");
            await engine.SwapHeadAsync(record.Head!, headFolder, record.Id);
        }
        else
        {
            await engine.SwapBodyAsync(Path.Combine(context.Folder, "body"), new Dictionary<string, string> { [record.Head!] = headFolder }, record.Id);
        }
        Promotions.Record(context, record.Mode == "head" ? null : Path.Combine(context.Folder, "body"), new Dictionary<string, string> { [record.Head!] = headFolder });
    }

    /// <summary>Fails the job when a data file changed since submission (its sha256 is in the record).</summary>
    internal static void CheckDataUnchanged(JobRecord record)
    {
        foreach (var file in record.Data)
        {
            var now = TrainingDataFile.Describe(file.Role, file.Path);
            if (now.Sha256 != file.Sha256)
                throw new InvalidDataException($"{file.Role} data {file.Path} changed since the job was submitted (sha256 {file.Sha256}, now {now.Sha256}); submit a new job");
        }
    }

    private static List<HeadFeatures> Read(IHead head, TrainingDataFile file, TrainingDataOptions options)
    {
        var examples = head.Training!.ReadExamples(file.Path, options).ToList();
        if (examples.Count == 0) throw new InvalidDataException($"{file.Path}: no {file.Role} examples");
        return examples;
    }

    private static void AddEpoch(JobRecord record, EpochResult epoch)
    {
        // A resumed run reports its epochs again from the checkpoint on: one entry per epoch number.
        record.EpochResults.RemoveAll(e => e.Epoch >= epoch.Epoch);
        record.EpochResults.Add(new JobEpoch(epoch.Epoch, epoch.TrainLoss, epoch.Metrics, Math.Round(epoch.Seconds, 3)));
        record.Epoch = epoch.Epoch;
    }

    /// <summary>Writes a whole folder under a temporary name, then renames it into place (replacing an older one).</summary>
    internal static void WriteFolder(string destination, Action<string> write)
    {
        var temp = destination + $".{Guid.NewGuid():N}.tmp";
        try
        {
            write(temp);
            if (Directory.Exists(destination)) Directory.Delete(destination, recursive: true);
            Directory.Move(temp, destination);
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    /// <summary>Step progress into the record (persisted by the runner at most every few seconds).</summary>
    private sealed class Progress(JobContext context) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress p) => context.Update(r =>
        {
            r.Epoch = p.Epoch;
            r.Epochs = p.Epochs;
            r.Step = p.Step;
            r.TotalSteps = p.TotalSteps;
            r.Loss = p.Loss;
            r.ExamplesPerSecond = Math.Round(p.ExamplesPerSecond, 2);
            r.EtaSeconds = Math.Round(p.Eta.TotalSeconds, 1);
        });
    }
}
