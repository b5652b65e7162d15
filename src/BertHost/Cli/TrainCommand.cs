using System.Globalization;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Config;
using BertHost.Core.Training;
using Microsoft.Extensions.Logging;

namespace BertHost.Cli;

/// <summary><c>berthost train</c>: trains one head of a deployment (head, partial or full mode) and writes its weights.</summary>
public sealed class TrainCommand : ICommand
{
    public string Name => "train";
    public string Summary => "Train a head of a deployment on labelled data and save its weights";
    public string Usage => "--config FILE --head NAME --train PATH [--eval PATH] [--mode head|partial|full] [--epochs N] [--out DIR] [--history DIR] ...";

    public string Details => """
        Modes: head (default; body frozen, its outputs cached once per example), partial (the top --partial-layers
        encoder layers train too), full (the whole body trains). Progress goes to stderr; one JSON line per epoch
        ({"epoch", "loss", "metrics"}) goes to stdout. The best epoch's weights (by the head's metric on --eval) are
        saved to --out (default: heads/NAME next to the config): head.json + head.safetensors, and in partial/full
        mode the new body as a Hugging Face folder in OUT/body (serve it as body.checkpoint). The run's history goes to
        --history (default: OUT): history.json (per epoch loss, seconds, metrics; the options; the data files with their
        sha256), history.csv (epoch,loss,seconds,<metrics>) and history.svg (loss and the primary eval metric per epoch).
        example:
          berthost train --config config/default.yaml --head sentiment --train sst2/train.tsv --eval sst2/dev.tsv --epochs 3
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("config", "deployment YAML", "FILE"),
        new("head", "head to train", "NAME"),
        new("train", "training data", "PATH"),
        new("eval", "evaluation data (per-epoch metrics, best epoch kept)", "PATH"),
        new("mode", "head, partial or full (default head)", "MODE"),
        new("epochs", "epochs (default 3)", "N"),
        new("batch-size", "examples per batch (default 16)", "N"),
        new("learning-rate", "peak learning rate (default 1e-3 head, 3e-5 partial/full)", "X"),
        new("seed", "shuffling and dropout seed (default 42)", "N"),
        new("partial-layers", "encoder layers that train in partial mode (default 1)", "N"),
        new("patience", "stop after N epochs without improvement", "N"),
        new("format", "data format (default: from the file)", "NAME"),
        new("out", "output folder", "DIR"),
        new("history", "folder for history.json, history.csv and history.svg (default: the output folder)", "DIR"),
        new("checkpoint-dir", "write resumable checkpoints here after every epoch; resume from the one found there", "DIR"),
        new("checkpoint-every", "also checkpoint every N optimizer steps (needs --checkpoint-dir)", "N"),
        new("verbose", "log loading details to stderr"),
    ];

    public Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var headName = args.Require("head");
        var trainPath = args.Require("train");
        var options = new TrainingOptions
        {
            Mode = ParseMode(args.Get("mode")),
            Epochs = args.GetInt("epochs", 1) ?? 3,
            BatchSize = args.GetInt("batch-size", 1) ?? 16,
            LearningRate = ParseDouble(args, "learning-rate"),
            Seed = args.GetInt("seed") ?? 42,
            PartialLayers = args.GetInt("partial-layers", 1) ?? 1,
            EarlyStoppingPatience = args.GetInt("patience", 1),
            CheckpointDirectory = args.Get("checkpoint-dir") is { } checkpoints ? Path.GetFullPath(checkpoints) : null,
            CheckpointEverySteps = args.GetInt("checkpoint-every", 1),
        };
        var config = EngineLoader.LoadConfig(args, context.Error);
        using var loggers = EngineLoader.StderrLogging(args.Has("verbose") ? LogLevel.Information : LogLevel.Warning);
        using var session = Open(config, headName, loggers);
        var format = args.Get("format");
        var train = ReadExamples(session.Head, trainPath, format);
        var evalPath = args.Get("eval");
        var eval = evalPath is not null ? ReadExamples(session.Head, evalPath, format) : null;

        Trainer trainer;
        try
        {
            trainer = new Trainer(session.Body, session.Head, options);
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
        if (options.CheckpointDirectory is { } dir)
        {
            var at = Describe(dir);
            context.Error.WriteLine(at is null
                ? $"berthost train: writing checkpoints to {dir}"
                : $"berthost train: resuming from epoch {at.Epoch} step {at.StepInEpoch} ({at.CompletedEpochs} epochs done) in {dir}");
        }
        var live = ReferenceEquals(context.Error, Console.Error) && !Console.IsErrorRedirected;
        var reporter = new ProgressLine(context.Error, live);
        var runClock = System.Diagnostics.Stopwatch.StartNew();
        // Each epoch's line is printed when the epoch ends, so a long run shows its progress on stdout too.
        var result = RunTraining(() => trainer.Train(train, eval, reporter, cancellationToken, epoch =>
        {
            var line = new JsonObject
            {
                ["epoch"] = epoch.Epoch,
                ["loss"] = epoch.TrainLoss,
                ["seconds"] = Math.Round(epoch.Seconds, 3),
                ["metrics"] = epoch.Metrics is null ? null : Metrics(epoch.Metrics),
            };
            context.Out.WriteLine(line.ToJsonString(JsonOutput.Serializer));
            context.Out.Flush();
        }));
        var runSeconds = runClock.Elapsed.TotalSeconds;
        reporter.Finish();

        var outDir = Path.GetFullPath(args.Get("out") ?? Path.Combine(Path.GetDirectoryName(config.SourcePath) ?? ".", "heads", session.Section.Name));
        var fingerprint = session.Body.Fingerprint;
        if (options.Mode != TrainingMode.Head)
        {
            var bodyDir = Path.Combine(outDir, "body");
            ModelFolderWriter.Save(session.Body.Model, session.Body.Folder, bodyDir);
            fingerprint = BodyFingerprint.Compute(session.Body.Model, Path.Combine(session.Body.Folder, "vocab.txt"));
            context.Error.WriteLine($"berthost train: wrote the trained body to {bodyDir} ({fingerprint}); serve it as body.checkpoint");
        }
        session.Head.Save(outDir, new HeadSaveInfo(fingerprint, result.BestMetrics ?? result.Epochs[^1].Metrics));
        context.Error.WriteLine($"berthost train: wrote head '{session.Section.Name}' to {outDir}" +
            (result.BestEpoch is { } best ? $" (best epoch {best}{(result.StoppedEarly ? ", stopped early" : "")})" : ""));

        var historyDir = Path.GetFullPath(args.Get("history") ?? outDir);
        var data = new List<TrainingDataFile> { TrainingDataFile.Describe("train", trainPath) };
        if (evalPath is not null) data.Add(TrainingDataFile.Describe("eval", evalPath));
        var info = new Dictionary<string, JsonNode?>
        {
            ["config"] = Path.GetFullPath(config.SourcePath),
            ["head"] = session.Section.Name,
            ["kind"] = session.Head.Kind,
            ["body"] = session.Body.Folder,
            ["body_fingerprint"] = fingerprint,
            ["train_examples"] = train.Count,
            ["eval_examples"] = eval?.Count ?? 0,
            ["best_epoch"] = result.BestEpoch,
            ["stopped_early"] = result.StoppedEarly,
            ["body_passes"] = result.BodyPasses,
            ["seconds"] = Math.Round(runSeconds, 3),
            ["train_examples_per_second"] = Math.Round(train.Count * (double)result.Epochs.Count / Math.Max(1e-9, runSeconds), 2),
            ["out"] = outDir,
        };
        var history = new TrainingHistory(result.Epochs, session.Head.Training!.CreateMetric().Primary, options, data, info);
        history.WriteTo(historyDir);
        context.Error.WriteLine($"berthost train: wrote {TrainingHistory.JsonFile}, {TrainingHistory.CsvFile} and {TrainingHistory.SvgFile} to {historyDir}");
        context.Out.Flush();
        return Task.FromResult(CliApp.ExitOk);
    }

    internal static TrainingSession Open(HostConfig config, string headName, ILoggerFactory loggers)
    {
        try
        {
            return TrainingSession.Open(config, headName, loggers);
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

    internal static List<HeadFeatures> ReadExamples(IHead head, string path, string? format)
    {
        try
        {
            var examples = head.Training!.ReadExamples(path, new TrainingDataOptions { Format = format }).ToList();
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

    private static double? ParseDouble(ParsedArgs args, string name)
    {
        var text = args.Get(name);
        if (text is null) return null;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || v < 0)
            throw new UsageException($"--{name} must be a non-negative number, got '{text}'");
        return v;
    }

    /// <summary>`epoch 1/3 step 40/120 loss 0.6931 312 ex/s ETA 0:12`: rewritten with \r on a terminal, else one line per epoch.</summary>
    private sealed class ProgressLine(TextWriter error, bool live) : IProgress<TrainingProgress>
    {
        private TrainingProgress? _last;

        public void Report(TrainingProgress p)
        {
            if (live) error.Write("\r" + Format(p) + "   ");
            else if (_last is not null && _last.Epoch != p.Epoch) error.WriteLine(Format(_last));
            _last = p;
        }

        public void Finish()
        {
            if (live) error.WriteLine();
            else if (_last is not null) error.WriteLine(Format(_last));
        }

        private static string Format(TrainingProgress p) => string.Create(CultureInfo.InvariantCulture,
            $"epoch {p.Epoch}/{p.Epochs} step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} {p.ExamplesPerSecond:F0} ex/s ETA {(int)p.Eta.TotalMinutes}:{p.Eta.Seconds:D2}");
    }
}
