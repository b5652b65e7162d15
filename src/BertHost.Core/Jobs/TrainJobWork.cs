using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Deployments;
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
        "skip_malformed", "promote", "tasks",
    ];

    /// <summary>The job folder's checkpoint sub-folder: the trainer resumes from it after an interruption.</summary>
    public const string CheckpointFolder = "checkpoint";

    /// <summary>The <c>mode</c> of a job training several heads jointly (the body trains: fully, or its top <c>partial_layers</c>).</summary>
    public const string Multitask = "multitask";

    public JobRecord Prepare(JobRequest request, JobEnvironment environment, JobIdentity identity)
    {
        var engine = environment.Engine;
        var modeText = request.String("mode") ?? "head";
        var multitask = string.Equals(modeText, Multitask, StringComparison.OrdinalIgnoreCase);
        var files = new JobData(environment.Settings, identity.Folder);
        var (heads, data) = multitask ? Tasks(request, environment, files) : SingleTask(request, environment, files);
        request.CheckUploadsUsed();
        // Like `train --mode multitask`: the whole body trains, or only its top layers when partial_layers is given.
        var mode = multitask ? (request.Has("partial_layers") ? TrainingMode.Partial : TrainingMode.Full)
            : Parse(modeText, TrainingOptions.ParseMode, "mode", " (or multitask)");
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
            CheckpointDirectory = Path.Combine(identity.Folder, CheckpointFolder),
        };
        var format = request.String("format");
        CheckTrainerAccepts(engine, heads, options, format);

        var skipMalformed = request.Bool("skip_malformed") ?? false;
        var promote = Promote(request, identity, (mode == TrainingMode.Head ? environment.Settings.Promote : environment.Settings.BodySwap) == "auto");

        var json = options.ToJson();
        json.Remove("mode");
        if (multitask) json["body_mode"] = mode.ToString().ToLowerInvariant();
        json["checkpoint_every"] = options.CheckpointEverySteps;
        json["format"] = format;
        json["skip_malformed"] = skipMalformed;
        return new JobRecord
        {
            Id = identity.Id,
            Kind = KindName,
            Folder = identity.Folder,
            Created = identity.Created,
            Head = multitask ? null : heads[0],
            Heads = multitask ? heads.ToList() : null,
            Mode = multitask ? Multitask : mode.ToString().ToLowerInvariant(),
            Options = json,
            Data = data,
            Epochs = options.Epochs,
            Promote = promote,
            SubmittedBy = identity.SubmittedBy,
        };
    }

    /// <summary>
    /// Whether the job's output serves as soon as it succeeds: <c>promote</c> when given, else the deployment's
    /// <paramref name="automatic"/> setting. Asking for it changes what is served, so it takes the admin scope.
    /// </summary>
    internal static bool Promote(JobRequest request, JobIdentity identity, bool automatic)
    {
        var promote = request.Bool("promote");
        if (promote == true && !identity.MayPromote)
            throw new ServingException(ServingError.Forbidden, "promote: true changes what is served and needs a key with the admin scope; submit without it and promote the job later", "promote");
        return promote ?? automatic;
    }

    /// <summary>head, train and eval of a one-head job.</summary>
    private static (IReadOnlyList<string> Heads, List<TrainingDataFile> Data) SingleTask(JobRequest request, JobEnvironment environment, JobData files)
    {
        if (request.Has("tasks")) throw new ServingException(ServingError.BadRequest, "tasks go with \"mode\": \"multitask\"", "tasks");
        var head = TrainableHead(request, "head", environment.Engine);
        var data = new List<TrainingDataFile> { files.File(request, "train", "train", required: true)! };
        if (files.File(request, "eval", "eval", required: false) is { } eval) data.Add(eval);
        return ([head], data);
    }

    /// <summary>The tasks of a multitask job: at least two, distinct trainable heads, each with its readable train (and optional eval) file, recorded as HEAD.train / HEAD.eval.</summary>
    private static (IReadOnlyList<string> Heads, List<TrainingDataFile> Data) Tasks(JobRequest request, JobEnvironment environment, JobData files)
    {
        foreach (var field in new[] { "head", "train", "eval" })
            if (request.Has(field) || request.Uploaded(field) is not null)
                throw new ServingException(ServingError.BadRequest, $"a multitask job names its heads and data in tasks, not in {field}", field);
        var tasks = request.Objects("tasks") ?? throw new ServingException(ServingError.BadRequest, "tasks is required for a multitask job", "tasks");
        if (tasks.Count < 2) throw new ServingException(ServingError.InvalidInput, $"tasks: a multitask job needs at least two tasks, got {tasks.Count}", "tasks");
        var heads = new List<string>();
        var data = new List<TrainingDataFile>();
        for (var i = 0; i < tasks.Count; i++)
        {
            var task = tasks[i];
            task.CheckKnown(["head", "train", "eval"]);
            var head = TrainableHead(task, "head", environment.Engine, $"tasks[{i}].");
            if (heads.Contains(head, StringComparer.OrdinalIgnoreCase))
                throw new ServingException(ServingError.InvalidInput, $"tasks[{i}].head: head '{head}' is given more than once", $"tasks[{i}].head");
            heads.Add(head);
            data.Add(files.File(task, "train", $"{head}.train", required: true)!);
            if (files.File(task, "eval", $"{head}.eval", required: false) is { } eval) data.Add(eval);
        }
        return (heads, data);
    }

    /// <summary>The deployment's name of the head in <paramref name="field"/>: 404 when there is none, 422 when it cannot train.</summary>
    private static string TrainableHead(JobRequest request, string field, IServedModels engine, string prefix = "")
    {
        var head = request.String(field, required: true)!;
        var section = engine.FindSection(head)
            ?? throw new ServingException(ServingError.UnknownHead, $"no head named '{head}' (heads: {string.Join(", ", engine.Config.Heads.Select(h => h.Name))})", prefix + field);
        if (engine.TrainingRefusal(section.Name) is { } refusal) throw new ServingException(ServingError.InvalidInput, refusal, prefix + field);
        return section.Name;
    }

    /// <summary>
    /// Whatever the trainer itself refuses (fp16, bf16 on a non-float32 body, ...) and a data format the heads do not
    /// read are refused at submission, not when the job runs: the trainer is built, on new head instances over the
    /// served body, and dropped.
    /// </summary>
    private static void CheckTrainerAccepts(IServedModels engine, IReadOnlyList<string> heads, TrainingOptions options, string? format)
    {
        using var lease = engine.AcquireBody();
        var created = new List<IHead>();
        try
        {
            foreach (var head in heads) created.Add(engine.CreateHead(head, lease.Body, engine.ServedWeights(head)));
            if (format is not null && created.FirstOrDefault(h => !h.Training!.DataFormats.Contains(format, StringComparer.Ordinal)) is { } refusing)
                throw new ServingException(ServingError.InvalidInput,
                    $"format '{format}' is not one the head {refusing.Name} reads ({string.Join(", ", refusing.Training!.DataFormats)})", "format");
            _ = new Trainer(lease.Body, created, options);
        }
        catch (ArgumentException e)
        {
            var field = e.Message.StartsWith("precision", StringComparison.Ordinal) ? "precision"
                : e.Message.StartsWith("partial layers", StringComparison.Ordinal) ? "partial_layers"
                : null;
            throw new ServingException(ServingError.InvalidInput, e.Message, field);
        }
        finally
        {
            foreach (var head in created) head.Dispose();
        }
    }

    private static T Parse<T>(string text, Func<string, T> parse, string field, string more = "")
    {
        try
        {
            return parse(text);
        }
        catch (ArgumentException e)
        {
            throw new ServingException(ServingError.InvalidInput, e.Message + more, field);
        }
    }

    /// <summary>The trainer's settings from the record (so a job resumed after a restart runs exactly as submitted).</summary>
    public static TrainingOptions OptionsOf(JobRecord record)
    {
        var o = record.Options;
        return new TrainingOptions
        {
            Mode = TrainingOptions.ParseMode(record.Mode == Multitask ? (string)o["body_mode"]! : record.Mode ?? "head"),
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
            : Deployment.LoadBody(engine.Config, served.Folder, forServing: false);
        try
        {
            var body = own ?? served;
            context.Update(r => r.BodyFingerprint = served.Fingerprint, persistNow: true);
            var names = HeadsOf(record);
            var heads = new List<IHead>();
            try
            {
                foreach (var name in names) heads.Add(engine.CreateHead(name, body, engine.ServedWeights(name)));
                var dataOptions = new TrainingDataOptions
                {
                    Format = (string?)record.Options["format"],
                    SkipMalformed = (bool?)record.Options["skip_malformed"] ?? false,
                    SkippedRecords = (file, line, reason) => logger.LogWarning("{File}:{Line}: skipped: {Reason}", file, line, reason),
                };
                var tasks = heads.Select(head =>
                {
                    var prefix = record.Mode == Multitask ? head.Name + "." : "";
                    var evalFile = record.Data.FirstOrDefault(d => d.Role == prefix + "eval");
                    return new TrainingTask(head, Read(head, record.Data.Single(d => d.Role == prefix + "train"), dataOptions),
                        evalFile is null ? null : Read(head, evalFile, dataOptions));
                }).ToList();

                var trainer = new Trainer(body, heads, options);
                var result = trainer.Train(tasks, new Progress(context), cancellationToken, epoch =>
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
                    AtomicFolder.Replace(Path.Combine(context.Folder, "body"), temp => ModelFolderWriter.Save(own.Model, own.Folder, temp));
                    fingerprint = BodyFingerprint.Compute(own.Model, Path.Combine(own.Folder, "vocab.txt"));
                }
                var metrics = result.BestMetrics ?? result.Epochs[^1].Metrics;
                var reported = result.BestEpoch is { } best ? result.Epochs[best - 1] : result.Epochs[^1];
                foreach (var head in heads)
                {
                    var headMetrics = heads.Count == 1 ? metrics : reported.Tasks?[head.Name].Metrics;
                    AtomicFolder.Replace(HeadFolder(record, head.Name), temp => head.Save(temp, new HeadSaveInfo(fingerprint, headMetrics)));
                }
                var info = new Dictionary<string, JsonNode?>
                {
                    ["job"] = record.Id,
                    ["head"] = record.Head,
                    ["heads"] = record.Heads is null ? null : new JsonArray(heads.Select(h => (JsonNode)new JsonObject { ["name"] = h.Name, ["kind"] = h.Kind }).ToArray()),
                    ["kind"] = heads.Count == 1 ? heads[0].Kind : null,
                    ["body"] = served.Folder,
                    ["body_fingerprint"] = fingerprint,
                    ["train_examples"] = tasks.Sum(t => t.Train.Count),
                    ["eval_examples"] = tasks.Sum(t => t.Eval?.Count ?? 0),
                    ["best_epoch"] = result.BestEpoch,
                    ["stopped_early"] = result.StoppedEarly,
                    ["out"] = context.Folder,
                };
                foreach (var key in info.Where(kv => kv.Value is null && kv.Key is "head" or "heads" or "kind").Select(kv => kv.Key).ToList()) info.Remove(key);
                var primary = heads.Count == 1 ? heads[0].Training!.CreateMetric().Primary : TrainingMetrics.MeanPrimary;
                new TrainingHistory(result.Epochs, primary, options, record.Data, info).WriteTo(context.Folder);
                context.Update(r =>
                {
                    // The trainer's list is complete even when the host died between a checkpoint and the record's update.
                    r.EpochResults = result.Epochs.Select(JobEpoch.Of).ToList();
                    r.BestEpoch = result.BestEpoch;
                    r.BestMetrics = metrics;
                    r.StoppedEarly = result.StoppedEarly;
                    r.OutputFingerprint = fingerprint;
                    r.EtaSeconds = 0;
                }, persistNow: true);
            }
            finally
            {
                foreach (var head in heads) head.Dispose();
            }
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
        var heads = HeadsOf(record).ToDictionary(h => h, h => HeadFolder(record, h));
        if (record.Mode == "head")
        {
            var served = engine.Body.Fingerprint;
            if (record.OutputFingerprint != served)
                throw new ServingException(ServingError.Conflict,
                    $"job {record.Id} trained head {record.Head} on body {record.OutputFingerprint}, the served body is {served}; submit a new job");
            await engine.SwapHeadAsync(record.Head!, heads[record.Head!], record.Id);
            context.RecordPromotion(null, heads);
        }
        else
        {
            // The new body and every head trained with it start serving together (one drain).
            var body = Path.Combine(context.Folder, "body");
            await engine.SwapBodyAsync(body, heads, record.Id);
            context.RecordPromotion(body, heads);
        }
    }

    private static IReadOnlyList<string> HeadsOf(JobRecord record) => record.Heads ?? [record.Head!];

    /// <summary>Where a head's trained weights go: <c>JOB/head</c>, or <c>JOB/heads/NAME</c> in a multitask job.</summary>
    private static string HeadFolder(JobRecord record, string head) =>
        record.Mode == Multitask ? Path.Combine(record.Folder, "heads", head) : Path.Combine(record.Folder, "head");

    /// <summary>Fails the job when a data file changed since submission (its sha256 is in the record) or is no longer a regular file.</summary>
    internal static void CheckDataUnchanged(JobRecord record)
    {
        foreach (var file in record.Data)
        {
            var name = file.Name ?? file.Path;
            string now;
            try
            {
                now = JobData.Hash(file.Path).Sha256;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new InvalidDataException($"{file.Role} data '{name}' cannot be read any more; submit a new job");
            }
            if (now != file.Sha256)
                throw new InvalidDataException($"{file.Role} data '{name}' changed since the job was submitted (sha256 {file.Sha256}, now {now}); submit a new job");
        }
    }

    private static List<HeadFeatures> Read(IHead head, TrainingDataFile file, TrainingDataOptions options)
    {
        var examples = head.Training!.ReadExamples(file.Path, options).ToList();
        if (examples.Count == 0) throw new InvalidDataException($"'{file.Name ?? file.Path}': no {file.Role} examples");
        return examples;
    }

    private static void AddEpoch(JobRecord record, EpochResult epoch)
    {
        // A resumed run reports its epochs again from the checkpoint on: one entry per epoch number.
        record.EpochResults.RemoveAll(e => e.Epoch >= epoch.Epoch);
        record.EpochResults.Add(JobEpoch.Of(epoch));
        record.Epoch = epoch.Epoch;
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
