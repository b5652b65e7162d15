using System.Globalization;
using System.Text.Json.Nodes;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Pretraining;
using BertHost.Core.Text;
using BertHost.Core.Training;
using BertHost.Core.Backends;

namespace BertHost.Cli;

/// <summary><c>berthost pretrain</c>: masked-LM pre-training of a body, fresh or continued, resumable.</summary>
public sealed class PretrainCommand : ICommand
{
    public string Name => "pretrain";
    public string Summary => "Pre-train a body with masked-language modelling on plain-text files (fresh or continued, resumable)";
    public string Usage => "--corpus FILE [--corpus FILE ...] --out DIR (--config-size NAME --vocab DIR | --config FILE --vocab DIR | --from DIR) [options]";

    public string Details => """
        Corpus: plain text, .gz or .xz; one paragraph per line, a blank line between documents. It is tokenized once
        into --cache-dir (reused while the files and vocabulary are unchanged) and packed into sequences of --seq-len
        tokens that run across document boundaries; 15 % of the tokens are masked afresh each time (80 % [MASK],
        10 % random, 10 % kept). A checkpoint (weights, optimizer, step) is written to --checkpoint-dir every
        --checkpoint-every steps and when the run stops (--max-minutes, Ctrl+C); running the same command again
        resumes from it. At the end --out holds a Hugging Face BertForMaskedLM folder (config.json, vocab.txt,
        model.safetensors with bert.* and cls.predictions.*) usable by `berthost serve`, `fill-mask` and
        transformers, plus history.json / history.csv / history.svg (the loss curve and held-out metrics).
        example:
          berthost pretrain --config-size mini --vocab ../shared/models/bert-base-uncased \
            --corpus ../shared/data/corpus/fiction-1.txt.xz --out /tmp/pretrain-mini --max-minutes 30
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("corpus", "corpus file (.txt, .gz, .xz); repeat for several", "FILE", Repeatable: true),
        new("out", "folder for the final model and history", "DIR"),
        new("config-size", $"fresh model of a standard size: {string.Join(", ", BertSizes.Names)}", "NAME"),
        new("config", "fresh model from a config.json (vocab_size is taken from the vocabulary)", "FILE"),
        new("vocab", "folder with vocab.txt for a fresh model", "DIR"),
        new("from", "continue pre-training an existing model folder (a body or a masked-LM model)", "DIR"),
        new("checkpoint-dir", "resumable checkpoint (default OUT/checkpoint)", "DIR"),
        new("cache-dir", "token caches (default $BERTHOST_CACHE_DIR or ~/.cache/berthost/tokens)", "DIR"),
        new("device", "auto (default), cpu, cuda or cuda:N", "DEVICE"),
        new("precision", "fp32 (default) or tf32 (CUDA); bf16/fp16 need autocast, absent in TorchSharp 0.107", "P"),
        new("max-steps", "optimizer steps of the run; the LR schedule spans them (default 10000)", "N"),
        new("max-minutes", "stop cleanly with a checkpoint after this much time", "X"),
        new("batch-size", "sequences per micro-batch (default 32)", "N"),
        new("grad-accum", "micro-batches per optimizer step (default 1)", "N"),
        new("seq-len", "sequence length (default 128)", "N"),
        new("long-seq-len", "second-phase length for the last --long-fraction of the steps (BERT: 512)", "N"),
        new("long-fraction", "share of steps at --long-seq-len (default 0.1)", "X"),
        new("lr", "peak learning rate (default 5e-4)", "X"),
        new("warmup", "warmup steps (default 6 % of --max-steps)", "N"),
        new("weight-decay", "AdamW weight decay (default 0.01)", "X"),
        new("mask-prob", "share of tokens to predict (default 0.15)", "X"),
        new("whole-word", "mask whole words (a token with its ## pieces)"),
        new("eval-every", "held-out evaluation every N steps (default 500; 0 = at the end)", "N"),
        new("eval-sequences", "held-out sequences (default 256)", "N"),
        new("checkpoint-every", "checkpoint every N steps (default 1000; 0 = when stopping)", "N"),
        new("log-every", "loss-curve point every N steps (default 50)", "N"),
        new("seed", "seed for initialisation, data order, masks and dropout (default 42)", "N"),
    ];

    public Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var corpus = args.GetAll("corpus").Concat(args.Positionals).ToList();
        if (corpus.Count == 0) throw new UsageException("give at least one --corpus FILE");
        foreach (var file in corpus)
            if (!File.Exists(file)) throw new CommandException($"--corpus: file '{file}' does not exist");
        var outDir = Path.GetFullPath(args.Require("out"));
        var setup = new PretrainSetup
        {
            Corpus = corpus.Select(Path.GetFullPath).ToList(),
            ConfigSize = args.Get("config-size"),
            ConfigFile = args.Get("config"),
            From = args.Get("from"),
            Vocab = args.Get("vocab"),
            MaxSteps = args.GetInt("max-steps", 1),
            MaxMinutes = Double(args, "max-minutes"),
            BatchSize = args.GetInt("batch-size", 1),
            GradAccum = args.GetInt("grad-accum", 1),
            SeqLen = args.GetInt("seq-len", 8),
            LongSeqLen = args.GetInt("long-seq-len", 8),
            LongFraction = Double(args, "long-fraction"),
            LearningRate = Double(args, "lr"),
            Warmup = args.GetInt("warmup", 0),
            WeightDecay = Double(args, "weight-decay"),
            MaskProb = Double(args, "mask-prob"),
            WholeWord = args.Has("whole-word"),
            EvalEvery = args.GetInt("eval-every", 0),
            EvalSequences = args.GetInt("eval-sequences", 1),
            CheckpointEvery = args.GetInt("checkpoint-every", 0),
            LogEvery = args.GetInt("log-every", 1),
            Seed = args.GetInt("seed", 0),
            Device = args.Get("device"),
            Precision = args.Get("precision"),
            Name = n => "--" + n.Replace('_', '-'),
        };
        var options = setup.ToOptions(Path.GetFullPath(args.Get("cache-dir") ?? PretrainSetup.DefaultCacheDirectory()),
            Path.GetFullPath(args.Get("checkpoint-dir") ?? Path.Combine(outDir, "checkpoint")));
        var problems = options.Problems();
        if (problems.Count > 0) throw new UsageException(problems[0]);
        try
        {
            DeviceSelection.ResolveDevice(options.Device);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--device: {e.Message}");
        }

        var (model, tokenizer, tokenizerFolder, origin) = CreateModel(setup);
        using (model)
        {
            Pretrainer pretrainer;
            try
            {
                pretrainer = new Pretrainer(model, tokenizer, tokenizerFolder, options);
            }
            catch (ArgumentException e)
            {
                throw new UsageException(e.Message);
            }
            var parameters = model.parameters().Sum(p => p.numel());
            context.Error.WriteLine($"berthost pretrain: {origin}: {model.Config.NumHiddenLayers} layers, hidden {model.Config.HiddenSize}, {parameters:N0} parameters; checkpoint {options.CheckpointDirectory}");
            if (File.Exists(Path.Combine(options.CheckpointDirectory, Pretrainer.StateFile)))
                context.Error.WriteLine($"berthost pretrain: resuming from the checkpoint in {options.CheckpointDirectory} (its weights replace the starting ones)");
            var live = TerminalProgress.IsInteractive(context.Error);
            var bar = new PretrainProgressBar(context.Error, live);
            PretrainResult result;
            try
            {
                result = pretrainer.Run(bar, cancellationToken);
            }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or CheckpointException or UnauthorizedAccessException)
            {
                bar.Finish();
                throw new CommandException(e.Message);
            }
            catch (OperationCanceledException)
            {
                bar.Finish();
                context.Error.WriteLine($"berthost pretrain: stopped; the checkpoint in {options.CheckpointDirectory} resumes the run");
                throw;
            }
            bar.Finish();

            pretrainer.SaveModel(outDir, new Dictionary<string, string> { ["berthost.pretrain_steps"] = result.Steps.ToString(CultureInfo.InvariantCulture) });
            var history = PretrainSetup.History(result, options, origin, outDir);
            history.WriteTo(outDir);
            var summary = new JsonObject
            {
                ["steps"] = result.Steps,
                ["completed"] = result.Completed,
                ["stop_reason"] = result.StopReason,
                ["resumed"] = result.Resumed,
                ["eval_loss"] = Finite(result.EvalLoss),
                ["masked_accuracy"] = Finite(result.MaskedAccuracy),
                ["tokens_per_second"] = Math.Round(result.TokensPerSecond, 1),
                ["tokens_seen"] = result.TokensSeen,
                ["train_seconds"] = Math.Round(result.TrainSeconds, 1),
                ["corpus_tokens"] = result.CorpusTokens,
                ["out"] = outDir,
            };
            context.Out.WriteLine(summary.ToJsonString(JsonOutput.Serializer));
            context.Out.Flush();
            context.Error.WriteLine($"berthost pretrain: wrote the model and {TrainingHistory.SvgFile} (loss curve) to {outDir}" +
                (result.Completed ? "" : $"; {result.StopReason}: run the same command again to continue"));
            return Task.FromResult(CliApp.ExitOk);
        }
    }

    private static PretrainStart CreateModel(PretrainSetup setup)
    {
        if (setup.SourceProblem() is { } problem) throw new UsageException(problem.Message);
        try
        {
            return setup.CreateModel();
        }
        catch (Exception e) when (e is CheckpointException or BertConfigException or IOException or InvalidDataException)
        {
            throw new CommandException(e.Message);
        }
    }

    private static double? Double(ParsedArgs args, string name)
    {
        var text = args.Get(name);
        if (text is null) return null;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
            ? v : throw new UsageException($"--{name} must be a number, got '{text}'");
    }

    private static JsonNode? Finite(double? v) => v is { } x && double.IsFinite(x) ? JsonValue.Create(x) : null;

    /// <summary>A progress bar on a terminal's stderr (Spectre.Console); a line per 10 % otherwise.</summary>
    private sealed class PretrainProgressBar(TextWriter error, bool live) : IProgress<PretrainProgress>
    {
        private int _lastDecile = -1;
        private PretrainPhase? _lastPhase;
        private long _lastTokenizeReport;
        private TerminalProgress? _bar;

        public void Report(PretrainProgress p)
        {
            if (p.Phase == PretrainPhase.Tokenizing && p.Tokenizing is { } t)
            {
                if (!live && t.Tokens - _lastTokenizeReport < 5_000_000 && _lastPhase == PretrainPhase.Tokenizing) return;
                _lastTokenizeReport = t.Tokens;
                Write($"tokenizing {Path.GetFileName(t.File)} ({t.FileIndex + 1}/{t.FileCount}): {t.Documents:N0} documents, {t.Tokens:N0} tokens",
                    t.FileIndex, t.FileCount);
            }
            else if (p.Phase == PretrainPhase.Training)
            {
                var decile = (int)(10 * p.Step / Math.Max(1, p.TotalSteps));
                if (!live && decile == _lastDecile) return;
                _lastDecile = decile;
                var text = string.Create(CultureInfo.InvariantCulture,
                    $"step {p.Step}/{p.TotalSteps} loss {p.Loss:F4} lr {p.LearningRate:0.0e+00} {p.TokensPerSecond:N0} tok/s elapsed {Clock(p.Elapsed)} ETA {Clock(p.Eta)}");
                if (live) Write(text, p.Step, p.TotalSteps);
                else
                {
                    var filled = (int)Math.Round((double)p.Step / Math.Max(1, p.TotalSteps) * 20);
                    Write($"[{new string('#', filled)}{new string('.', 20 - filled)}] {text}", p.Step, p.TotalSteps);
                }
            }
            else if (p.Phase != _lastPhase && p.Phase != PretrainPhase.Tokenizing)
            {
                Write(p.Phase == PretrainPhase.Evaluating ? $"evaluating at step {p.Step}" : $"checkpoint at step {p.Step}", p.Step, p.TotalSteps);
            }
            _lastPhase = p.Phase;
        }

        public void Finish()
        {
            if (live) _bar?.Dispose();
        }

        private void Write(string line, double done, double total)
        {
            if (!live)
            {
                error.WriteLine(line);
                return;
            }
            _bar ??= new TerminalProgress("pretraining");
            _bar.Update(done, total, line);
        }

        private static string Clock(TimeSpan t) => $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}";
    }
}
