using System.Globalization;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Config;
using BertHost.Core.Lora;
using BertHost.Core.Training;
using Microsoft.Extensions.Logging;

namespace BertHost.Cli;

/// <summary><c>berthost train</c>: trains one head of a deployment (head, partial or full mode) and writes its weights.</summary>
public sealed class TrainCommand : ICommand
{
    public string Name => "train";
    public string Summary => "Train a head of a deployment on labelled data and save its weights";
    public string Usage => "--config FILE --head NAME --train PATH [--eval PATH] [--mode head|partial|full|lora] [--epochs N] [--out DIR] [--history DIR] ...\n"
        + "       berthost train --config FILE --mode multitask --head A --train A=PATH [--eval A=PATH] --head B --train B=PATH [--eval B=PATH] ... [--partial-layers N] [--out DIR]";

    public string Details => """
        Modes: head (default; body frozen, its outputs cached once per example), partial (the top --partial-layers
        encoder layers train too), full (the whole body trains), lora (the body stays frozen and shared; a low-rank
        adapter of --lora-rank (8) and --lora-alpha (16) on --lora-targets (query,value; or all-linear) trains with the
        head and is saved in its head folder), multitask (several heads train jointly on the body: the whole body, or its
        top --partial-layers layers when that option is given, or one adapter per head when a --lora-* option is given;
        --train/--eval take HEAD=PATH).
        Progress goes to stderr; one JSON line per epoch ({"epoch", "loss", "metrics"}; multitask adds "tasks") goes to
        stdout. The best epoch's weights (by the head's metric on --eval; multitask: the mean of the heads' primary
        metrics) are saved to --out (default: heads/NAME, multitask heads/multitask, next to the config): head.json +
        head.safetensors (multitask: one folder OUT/HEAD per head), and when the body trains the new body as a Hugging
        Face folder in OUT/body (serve it as body.checkpoint). The run's history goes to --history (default: OUT):
        history.json (per epoch loss, seconds, metrics; the options; the data files with their sha256; skipped
        records), history.csv and history.svg. --checkpoint-dir DIR makes the run resumable: a checkpoint after every
        epoch (and every --checkpoint-every steps); run the same command again to resume from it. --skip-malformed
        skips malformed records (counted, and printed) instead of stopping at the first one.
        examples:
          berthost train --config config/default.yaml --head sentiment --train sst2/train.tsv --eval sst2/dev.tsv --epochs 3
          berthost train --config config/default.yaml --mode multitask --head sentiment --train sentiment=sst2.tsv \
              --head ner --train ner=conll.txt --eval ner=conll-dev.txt --epochs 2 --out runs/mt
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("config", "deployment YAML", "FILE"),
        new("head", "head to train (multitask: give it once per head)", "NAME", Repeatable: true),
        new("train", "training data (multitask: HEAD=PATH, once per head)", "PATH", Repeatable: true),
        new("eval", "evaluation data (per-epoch metrics, best epoch kept; multitask: HEAD=PATH)", "PATH", Repeatable: true),
        new("mode", "head, partial, full or multitask (default head)", "MODE"),
        new("epochs", "epochs (default 3)", "N"),
        new("batch-size", "examples per batch (default 16)", "N"),
        new("learning-rate", "peak learning rate (default 1e-3 head, 3e-5 partial/full/multitask)", "X"),
        new("seed", "shuffling and dropout seed (default 42)", "N"),
        new("partial-layers", "encoder layers that train in partial mode (default 1; multitask: only these train)", "N"),
        new("patience", "stop after N epochs without improvement", "N"),
        new("format", "data format (default: from the file)", "NAME"),
        new("precision", "fp32 (default), bf16, fp16 or auto: arithmetic of the body's passes (weights stay fp32)", "P"),
        new("lora-rank", "lora mode: rank r of the adapters (default 8)", "N"),
        new("lora-alpha", "lora mode: alpha; updates are scaled by alpha/r (default 16)", "X"),
        new("lora-dropout", "lora mode: dropout on the adapters' input while training (default 0.1)", "X"),
        new("lora-targets", "lora mode: module names the adapters target, comma-separated (default query,value), or all-linear", "LIST"),
        new("skip-malformed", "skip malformed records (counted) instead of stopping at the first"),
        new("fresh", "start the head from freshly initialised weights (seeded) even when the deployment gives it weights:"),
        new("out", "output folder", "DIR"),
        new("history", "folder for history.json, history.csv and history.svg (default: the output folder)", "DIR"),
        new("checkpoint-dir", "write resumable checkpoints here after every epoch; resume from the one found there", "DIR"),
        new("checkpoint-every", "also checkpoint every N optimizer steps (needs --checkpoint-dir)", "N"),
        new("verbose", "log loading details to stderr"),
    ];

    private sealed record TaskData(string Head, string TrainPath, string? EvalPath);

    public Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var modeText = args.Get("mode");
        var multitask = string.Equals(modeText, "multitask", StringComparison.OrdinalIgnoreCase);
        var specs = multitask ? MultitaskSpecs(args) : [SingleSpec(args)];
        var options = new TrainingOptions
        {
            Mode = multitask ? (LoraOptionsGiven(args) ? TrainingMode.Lora : args.Has("partial-layers") ? TrainingMode.Partial : TrainingMode.Full) : ParseMode(modeText),
            Epochs = args.GetInt("epochs", 1) ?? 3,
            BatchSize = args.GetInt("batch-size", 1) ?? 16,
            LearningRate = ParseDouble(args, "learning-rate"),
            Seed = args.GetInt("seed") ?? 42,
            PartialLayers = args.GetInt("partial-layers", 1) ?? 1,
            EarlyStoppingPatience = args.GetInt("patience", 1),
            CheckpointDirectory = args.Get("checkpoint-dir") is { } checkpoints ? Path.GetFullPath(checkpoints) : null,
            CheckpointEverySteps = args.GetInt("checkpoint-every", 1),
            Precision = ParsePrecision(args.Get("precision")),
            Lora = ParseLora(args),
        };
        if (LoraOptionsGiven(args) && !multitask && !string.Equals(modeText, "lora", StringComparison.OrdinalIgnoreCase))
            throw new UsageException("--lora-* options go with --mode lora (or --mode multitask)");
        var config = EngineLoader.LoadConfig(args, context.Error);
        // --fresh: the trained heads ignore their weights: (a deployment that serves trained heads, such as
        // config/default.yaml, can then be retrained from scratch, reproducibly, into the same folders).
        if (args.Has("fresh"))
            config = config with
            {
                Heads = config.Heads.Select(h => specs.Any(t => string.Equals(t.Head, h.Name, StringComparison.OrdinalIgnoreCase)) ? h with { Weights = null } : h).ToList(),
            };
        using var loggers = EngineLoader.StderrLogging(args.Has("verbose") ? LogLevel.Information : LogLevel.Warning);
        // Head mode never changes the body, so it gets the serving pass's prepacked weights for the feature cache.
        using var session = Open(config, specs.Select(t => t.Head).ToList(), loggers, prepack: options.Mode == TrainingMode.Head);
        var format = args.Get("format");
        var skipMalformed = args.Has("skip-malformed");
        var skipped = new JsonObject();
        List<HeadFeatures> Read(IHead head, string path)
        {
            var examples = ReadExamples(head, path, format, skipMalformed, out var count);
            if (skipMalformed)
            {
                skipped[path] = count;
                context.Error.WriteLine($"berthost train: skipped {count} malformed record{(count == 1 ? "" : "s")} in {path}");
            }
            return examples;
        }
        var tasks = specs.Select((t, i) => new TrainingTask(session.Heads[i], Read(session.Heads[i], t.TrainPath),
            t.EvalPath is null ? null : Read(session.Heads[i], t.EvalPath))).ToList();

        Trainer trainer;
        try
        {
            // Head mode on a LoRA head trains the head on the adapted body and keeps the adapter.
            trainer = new Trainer(session.Body, session.Heads, options, session.Adapters);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        using var adapters = new AdapterOwner(trainer);
        if (options.Mode == TrainingMode.Lora)
        {
            var first = trainer.Adapters.Values.First();
            context.Error.WriteLine($"berthost train: lora {options.Lora} on {first.Pairs.Count} modules, {first.ParameterCount:N0} adapter parameters per head; the body stays frozen");
        }
        if (trainer.Precision != TrainingPrecision.Fp32)
            context.Error.WriteLine($"berthost train: the body's passes run in {trainer.Precision.ToString().ToLowerInvariant()} (weights stay fp32)");
        if (options.CheckpointDirectory is { } dir)
        {
            var at = Describe(dir);
            context.Error.WriteLine(at is null
                ? $"berthost train: writing checkpoints to {dir}"
                : $"berthost train: resuming from epoch {at.Epoch} step {at.StepInEpoch} ({at.CompletedEpochs} epochs done) in {dir}");
        }
        var live = TerminalProgress.IsInteractive(context.Error);
        var reporter = new ProgressLine(context.Error, live);
        var runClock = System.Diagnostics.Stopwatch.StartNew();
        // Each epoch's line is printed when the epoch ends, so a long run shows its progress on stdout too.
        var result = RunTraining(() => trainer.Train(tasks, reporter, cancellationToken, epoch =>
        {
            var line = new JsonObject
            {
                ["epoch"] = epoch.Epoch,
                ["loss"] = epoch.TrainLoss,
                ["seconds"] = Math.Round(epoch.Seconds, 3),
                ["metrics"] = epoch.Metrics is null ? null : Metrics(epoch.Metrics),
            };
            if (multitask && epoch.Tasks is not null)
                line["tasks"] = new JsonObject(epoch.Tasks.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonObject
                {
                    ["loss"] = kv.Value.TrainLoss,
                    ["metrics"] = kv.Value.Metrics is null ? null : Metrics(kv.Value.Metrics),
                })));
            context.Out.WriteLine(line.ToJsonString(JsonOutput.Serializer));
            context.Out.Flush();
        }));
        var runSeconds = runClock.Elapsed.TotalSeconds;
        reporter.Finish();

        var outDir = Path.GetFullPath(args.Get("out") ?? Path.Combine(Path.GetDirectoryName(config.SourcePath) ?? ".", "heads", multitask ? "multitask" : session.Section.Name));
        var fingerprint = session.Body.Fingerprint;
        if (options.Mode is not (TrainingMode.Head or TrainingMode.Lora))
        {
            var bodyDir = Path.Combine(outDir, "body");
            ModelFolderWriter.Save(session.Body.Model, session.Body.Folder, bodyDir);
            fingerprint = BodyFingerprint.Compute(session.Body.Model, Path.Combine(session.Body.Folder, "vocab.txt"));
            context.Error.WriteLine($"berthost train: wrote the trained body to {bodyDir} ({fingerprint}); serve it as body.checkpoint");
        }
        var reported = result.BestEpoch is { } bestEpoch ? result.Epochs[bestEpoch - 1] : result.Epochs[^1];
        for (var i = 0; i < tasks.Count; i++)
        {
            var headDir = multitask ? Path.Combine(outDir, session.Sections[i].Name) : outDir;
            session.Heads[i].Save(headDir, new HeadSaveInfo(fingerprint, reported.Tasks?[tasks[i].Name].Metrics));
            if ((trainer.Adapters.GetValueOrDefault(session.Heads[i].Name) ?? session.Adapters.GetValueOrDefault(session.Heads[i].Name)) is { } adapter)
                LoraHeadFolder.Attach(headDir, adapter);
            context.Error.WriteLine($"berthost train: wrote head '{session.Sections[i].Name}' to {headDir}" +
                (result.BestEpoch is { } best ? $" (best epoch {best}{(result.StoppedEarly ? ", stopped early" : "")})" : ""));
        }

        var historyDir = Path.GetFullPath(args.Get("history") ?? outDir);
        var data = new List<TrainingDataFile>();
        foreach (var t in specs)
        {
            var prefix = multitask ? t.Head + "." : "";
            data.Add(TrainingDataFile.Describe(prefix + "train", t.TrainPath));
            if (t.EvalPath is not null) data.Add(TrainingDataFile.Describe(prefix + "eval", t.EvalPath));
        }
        var trainCount = tasks.Sum(t => t.Train.Count);
        var info = new Dictionary<string, JsonNode?>
        {
            ["config"] = Path.GetFullPath(config.SourcePath),
            ["head"] = multitask ? null : session.Section.Name,
            ["kind"] = multitask ? null : session.Head.Kind,
            ["heads"] = multitask ? new JsonArray(session.Heads.Select(h => (JsonNode)new JsonObject { ["name"] = h.Name, ["kind"] = h.Kind }).ToArray()) : null,
            ["body"] = session.Body.Folder,
            ["body_fingerprint"] = fingerprint,
            ["train_examples"] = trainCount,
            ["eval_examples"] = tasks.Sum(t => t.Eval?.Count ?? 0),
            ["skipped_records"] = skipMalformed ? skipped : null,
            ["best_epoch"] = result.BestEpoch,
            ["stopped_early"] = result.StoppedEarly,
            ["resumed_from_epoch"] = result.ResumedFromEpoch,
            ["resumed_from_step"] = result.ResumedFromStep,
            ["body_passes"] = result.BodyPasses,
            ["seconds"] = Math.Round(runSeconds, 3),
            ["train_examples_per_second"] = Math.Round(trainCount * (double)result.Epochs.Count / Math.Max(1e-9, runSeconds), 2),
            ["out"] = outDir,
        };
        foreach (var key in info.Where(kv => kv.Value is null).Select(kv => kv.Key).ToList()) info.Remove(key);
        var primary = multitask ? TrainingMetrics.MeanPrimary : session.Head.Training!.CreateMetric().Primary;
        var history = new TrainingHistory(result.Epochs, primary, options, data, info);
        history.WriteTo(historyDir);
        context.Error.WriteLine($"berthost train: wrote {TrainingHistory.JsonFile}, {TrainingHistory.CsvFile} and {TrainingHistory.SvgFile} to {historyDir}");
        context.Out.Flush();
        return Task.FromResult(CliApp.ExitOk);
    }

    private static TaskData SingleSpec(ParsedArgs args)
    {
        var heads = args.GetAll("head");
        if (heads.Count > 1) throw new UsageException("--head is given more than once; train several heads with --mode multitask");
        foreach (var name in new[] { "train", "eval" })
            if (args.GetAll(name).Count > 1) throw new UsageException($"option --{name} given more than once");
        return new TaskData(args.Require("head"), args.Require("train"), args.Get("eval"));
    }

    /// <summary>--head A --head B with --train A=PATH --train B=PATH and optional --eval A=PATH.</summary>
    private static List<TaskData> MultitaskSpecs(ParsedArgs args)
    {
        var heads = args.GetAll("head");
        if (heads.Count < 2) throw new UsageException("--mode multitask needs at least two --head options");
        if (heads.Distinct(StringComparer.OrdinalIgnoreCase).Count() != heads.Count) throw new UsageException("--head names a head more than once");
        Dictionary<string, string> ByHead(string option)
        {
            var map = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var value in args.GetAll(option))
            {
                var eq = value.IndexOf('=');
                if (eq <= 0 || eq == value.Length - 1) throw new UsageException($"--{option} '{value}': multitask needs HEAD=PATH");
                var head = value[..eq];
                if (!heads.Contains(head, StringComparer.OrdinalIgnoreCase)) throw new UsageException($"--{option} {value}: '{head}' is not one of the --head options ({string.Join(", ", heads)})");
                if (!map.TryAdd(head, value[(eq + 1)..])) throw new UsageException($"--{option} is given twice for head '{head}'");
            }
            return map;
        }
        var train = ByHead("train");
        var eval = ByHead("eval");
        return heads.Select(h => new TaskData(h, train.TryGetValue(h, out var path) ? path : throw new UsageException($"head '{h}' has no --train {h}=PATH"),
            eval.GetValueOrDefault(h))).ToList();
    }

    internal static TrainingSession Open(HostConfig config, IReadOnlyList<string> headNames, ILoggerFactory loggers, bool asServed = false, bool prepack = false)
    {
        try
        {
            return TrainingSession.Open(config, headNames, loggers, asServed, prepack);
        }
        catch (BodyLoadException e)
        {
            throw new CommandException($"body: {e.Message}");
        }
        catch (HeadLoadException e)
        {
            throw new CommandException(e.Message);
        }
    }

    private static TrainingCheckpointInfo? Describe(string dir)
    {
        try
        {
            return TrainingCheckpoint.Describe(dir);
        }
        catch (TrainingCheckpointException e)
        {
            throw new CommandException(e.Message);
        }
    }

    /// <summary>Runs the trainer; a checkpoint that cannot be resumed is a one-line error.</summary>
    private static TrainingResult RunTraining(Func<TrainingResult> train)
    {
        try
        {
            return train();
        }
        catch (TrainingCheckpointException e)
        {
            throw new CommandException(e.Message);
        }
    }

    internal static List<HeadFeatures> ReadExamples(IHead head, string path, string? format) => ReadExamples(head, path, format, false, out _);

    /// <summary>The labelled examples of <paramref name="path"/>; with <paramref name="skipMalformed"/> malformed records are counted in <paramref name="skipped"/>.</summary>
    internal static List<HeadFeatures> ReadExamples(IHead head, string path, string? format, bool skipMalformed, out int skipped)
    {
        var count = 0;
        try
        {
            var options = new TrainingDataOptions { Format = format, SkipMalformed = skipMalformed, SkippedRecords = (_, _, _) => count++ };
            var examples = head.Training!.ReadExamples(path, options).ToList();
            skipped = count;
            if (examples.Count == 0) throw new CommandException($"{path}: no examples");
            return examples;
        }
        catch (TrainingDataException e)
        {
            throw new CommandException(e.Message);
        }
        catch (Exception e) when (e is FileNotFoundException or ArgumentException or IOException)
        {
            throw new CommandException(e.Message);
        }
    }

    internal static JsonObject Metrics(IReadOnlyDictionary<string, double> metrics) =>
        new(metrics.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));

    private static TrainingMode ParseMode(string? value)
    {
        try
        {
            return value is null ? TrainingMode.Head : TrainingOptions.ParseMode(value);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--mode: {e.Message}");
        }
    }

    private static readonly string[] LoraOptions = ["lora-rank", "lora-alpha", "lora-dropout", "lora-targets"];

    private static bool LoraOptionsGiven(ParsedArgs args) => LoraOptions.Any(args.Has);

    private static LoraSettings ParseLora(ParsedArgs args)
    {
        var defaults = new LoraSettings();
        double Number(string name, double fallback)
        {
            var text = args.Get(name);
            if (text is null) return fallback;
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
                ? v : throw new UsageException($"--{name} must be a number, got '{text}'");
        }
        try
        {
            var settings = new LoraSettings(args.GetInt("lora-rank", 1) ?? defaults.Rank, Number("lora-alpha", defaults.Alpha), Number("lora-dropout", defaults.Dropout),
                args.Get("lora-targets") is { } targets ? LoraSettings.ParseTargets(targets) : null);
            settings.Validate();
            return settings;
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--{(e.Message.Contains("rank") ? "lora-rank" : e.Message.Contains("alpha") ? "lora-alpha" : e.Message.Contains("dropout") ? "lora-dropout" : "lora-targets")}: {e.Message}");
        }
    }

    /// <summary>Disposes the trainer's adapters when the command ends (saved or not).</summary>
    private sealed class AdapterOwner(Trainer trainer) : IDisposable
    {
        public void Dispose()
        {
            foreach (var adapter in trainer.Adapters.Values) adapter.Dispose();
        }
    }

    private static TrainingPrecision ParsePrecision(string? value)
    {
        try
        {
            return value is null ? TrainingPrecision.Fp32 : TrainingOptions.ParsePrecision(value);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--precision: {e.Message}");
        }
    }

    private static double? ParseDouble(ParsedArgs args, string name)
    {
        var text = args.Get(name);
        if (text is null) return null;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || v < 0)
            throw new UsageException($"--{name} must be a non-negative number, got '{text}'");
        return v;
    }

    /// <summary>`epoch 1/3 step 40/120 loss 0.6931 312 ex/s ETA 0:12`: beside a progress bar on a terminal, else one line per epoch.</summary>
    private sealed class ProgressLine(TextWriter error, bool live) : IProgress<TrainingProgress>, IProgress<FeatureCacheProgress>
    {
        private TrainingProgress? _last;
        private TerminalProgress? _bar;

        // The trainer reports the cache fill at most every 2 s and once when it is done; redirected stderr gets one
        // line per report, so a long fill is never silent.
        public void Report(FeatureCacheProgress p)
        {
            var line = string.Create(CultureInfo.InvariantCulture,
                $"caching body outputs {p.Done}/{p.Total} examples {p.ExamplesPerSecond:F0} ex/s ETA {(int)p.Eta.TotalMinutes}:{p.Eta.Seconds:D2}");
            if (live) error.Write("\r" + line + "   " + (p.Finished ? Environment.NewLine : ""));
            else error.WriteLine(line);
            error.Flush();
        }

        public void Report(TrainingProgress p)
        {
            if (live)
            {
                _bar ??= new TerminalProgress("training");
                _bar.Update((p.Epoch - 1) * (double)p.TotalSteps + p.Step, (double)p.Epochs * p.TotalSteps, Format(p));
            }
            else if (_last is not null && _last.Epoch != p.Epoch) error.WriteLine(Format(_last));
            _last = p;
        }

        public void Finish()
        {
            if (live) _bar?.Dispose();
            else if (_last is not null) error.WriteLine(Format(_last));
        }

        private static string Format(TrainingProgress p) => string.Create(CultureInfo.InvariantCulture,
            $"epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} {p.ExamplesPerSecond:F0} ex/s ETA {(int)p.Eta.TotalMinutes}:{p.Eta.Seconds:D2}");
    }
}
