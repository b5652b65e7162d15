using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Text;
using BertHost.Core.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using BertHost.Core.Backends;

namespace BertHost.Core.Pretraining;

/// <summary>
/// Masked-language-model pre-training of a <see cref="BertForMaskedLM"/>: the corpus is tokenized once into a
/// <see cref="TokenCache"/>, packed into fixed-length sequences (<see cref="PackedSequences"/>), masked afresh for every
/// use (<see cref="MlmMasker"/>), and trained with AdamW (decay / no-decay groups), linear warmup and decay, gradient
/// clipping and accumulation. Held-out sequences give the MLM loss and masked-token accuracy.
/// <para>Everything random is derived from the seed and the micro-batch number (data order, masks, dropout), and the
/// checkpoint holds the weights, the optimizer state and the step, so a resumed run continues exactly where an
/// uninterrupted one would be. A run finding a checkpoint in <see cref="PretrainingOptions.CheckpointDirectory"/>
/// resumes from it.</para>
/// </summary>
public sealed class Pretrainer
{
    /// <summary>The run state in a checkpoint folder; its presence means a run there resumes.</summary>
    public const string StateFile = "state.json";
    private const string OptimizerFile = "optimizer.bin";
    private const string ModelFolder = "model";

    private readonly BertForMaskedLM _model;
    private readonly BertTextTokenizer _tokenizer;
    private readonly string _tokenizerFolder;
    private readonly PretrainingOptions _options;

    /// <param name="model">The model to train (fresh or pre-trained); it is trained in place and moved to the device.</param>
    /// <param name="tokenizerFolder">Folder with the vocab.txt the model uses (copied into checkpoints).</param>
    public Pretrainer(BertForMaskedLM model, BertTextTokenizer tokenizer, string tokenizerFolder, PretrainingOptions options)
    {
        var problems = options.Problems();
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems));
        if (tokenizer.VocabSize > model.Config.VocabSize)
            throw new ArgumentException($"the vocabulary has {tokenizer.VocabSize} tokens but the model's vocab_size is {model.Config.VocabSize}");
        var longest = options.LongSequenceLength ?? options.SequenceLength;
        if (longest > model.Config.MaxPositionEmbeddings)
            throw new ArgumentException($"sequence length {longest} exceeds the model's max_position_embeddings ({model.Config.MaxPositionEmbeddings})");
        _model = model;
        _tokenizer = tokenizer;
        _tokenizerFolder = tokenizerFolder;
        _options = options;
    }

    /// <summary>Called on the training thread with each new point of the loss curve (live progress for jobs; the result holds the whole curve).</summary>
    public Action<PretrainPoint>? PointRecorded { get; init; }

    /// <summary>Runs (or resumes) pre-training until <see cref="PretrainingOptions.MaxSteps"/>, the time budget or cancellation.
    /// On cancellation a checkpoint is written before <see cref="OperationCanceledException"/> propagates.</summary>
    public PretrainResult Run(IProgress<PretrainProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var device = DeviceSelection.ResolveDevice(_options.Device);
        if (_options.Precision == "tf32")
        {
            if (device.type != DeviceType.CUDA) throw new ArgumentException("precision tf32 needs a CUDA device");
            backends.cuda.matmul.allow_tf32 = true;
        }

        var vocabPath = Path.Combine(_tokenizerFolder, "vocab.txt");
        using var cache = TokenCache.OpenOrBuild(_options.Corpus, _tokenizer, vocabPath, _options.CacheDirectory,
            new SynchronousProgress<TokenizeProgress>(t => progress?.Report(new PretrainProgress(PretrainPhase.Tokenizing, 0, _options.MaxSteps, double.NaN, 0, 0, clock.Elapsed, TimeSpan.Zero, t))),
            cancellationToken);
        var corpusKey = Path.GetFileNameWithoutExtension(cache.Path);
        var data = new PretrainData(cache, _tokenizer, _options);
        var masker = new MlmMasker(Enumerable.Range(0, _tokenizer.VocabSize).Select(_tokenizer.IdToToken).ToList(), _tokenizer.MaskTokenId,
            [_tokenizer.ClsTokenId, _tokenizer.SepTokenId, _tokenizer.PadTokenId, _tokenizer.UnkTokenId], _options.MaskProbability, _options.WholeWordMasking);

        _model.to(device);
        // The pooler is not part of the MLM objective (no next-sentence prediction): it stays as it is.
        var trainable = _model.bert.named_parameters().Where(p => !p.name.StartsWith("pooler.", StringComparison.Ordinal))
            .Select(p => ("bert." + p.name, p.parameter))
            .Concat(_model.cls.named_parameters().Select(p => ("cls." + p.name, p.parameter)))
            .ToList();
        using var optimizer = OptimizerGroups.CreateAdamW(trainable, _options.LearningRate, _options.WeightDecay);

        var state = RunState.Fresh(_options, corpusKey);
        var resumed = false;
        if (FindCheckpoint() is { } checkpoint)
        {
            state = RunState.Load(Path.Combine(checkpoint, StateFile));
            state.CheckCompatible(_options, corpusKey, checkpoint);
            using (var source = CheckpointFiles.OpenFolder(Path.Combine(checkpoint, ModelFolder)))
                MaskedLMCheckpoint.Load(_model, source);
            optimizer.load_state_dict(Path.Combine(checkpoint, OptimizerFile));
            resumed = true;
        }

        var trainClock = new Stopwatch();
        var trainSecondsAtStart = state.TrainSeconds;
        var pointLossSum = 0.0;
        var pointLossCount = 0;
        var stopReason = "max steps reached";
        var completed = true;
        var runTokens = 0L;
        var runSteps = 0;
        try
        {
            _model.train();
            while (state.Step < _options.MaxSteps)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    Checkpoint(optimizer, state.WithTrainSeconds(trainSecondsAtStart, trainClock), progress, clock);
                    cancellationToken.ThrowIfCancellationRequested();
                }
                if (_options.MaxMinutes is { } minutes && clock.Elapsed.TotalMinutes >= minutes)
                {
                    stopReason = $"time budget of {minutes} minutes used";
                    completed = false;
                    break;
                }

                trainClock.Start();
                var step = state.Step;
                var stepLoss = 0.0;
                for (var m = 0; m < _options.GradientAccumulationSteps; m++)
                {
                    var micro = step * _options.GradientAccumulationSteps + m;
                    using var scope = NewDisposeScope();
                    var batch = data.TrainBatch(step, micro, masker);
                    manual_seed(Seeds.Mix(_options.Seed, micro));
                    var (logits, targets) = MaskedLogits(batch, device);
                    using var loss = nn.functional.cross_entropy(logits, targets);
                    stepLoss += loss.item<float>() / _options.GradientAccumulationSteps;
                    (_options.GradientAccumulationSteps > 1 ? loss.div(_options.GradientAccumulationSteps) : loss).backward();
                    runTokens += batch.RealTokens;
                    state.TokensSeen += batch.RealTokens;
                }
                var lr = _options.LearningRate * LinearSchedule.Factor(step, _options.EffectiveWarmupSteps, _options.MaxSteps);
                using (NewDisposeScope())
                {
                    if (_options.MaxGradNorm > 0) nn.utils.clip_grad_norm_(trainable.Select(p => p.Item2), _options.MaxGradNorm);
                    foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
                    optimizer.step();
                    optimizer.zero_grad();
                }
                trainClock.Stop();
                state.Step++;
                state.StepLosses.Add(stepLoss);
                pointLossSum += stepLoss;
                pointLossCount++;

                runSteps++;
                var rate = runTokens / Math.Max(1e-9, trainClock.Elapsed.TotalSeconds);
                var eta = TimeSpan.FromSeconds(trainClock.Elapsed.TotalSeconds / runSteps * (_options.MaxSteps - state.Step));
                progress?.Report(new PretrainProgress(PretrainPhase.Training, state.Step, _options.MaxSteps, pointLossCount > 0 ? pointLossSum / pointLossCount : stepLoss, lr, rate, clock.Elapsed, eta));

                var evalNow = _options.EvalEvery > 0 && state.Step % _options.EvalEvery == 0;
                if (state.Step % _options.LogEvery == 0 || evalNow)
                {
                    (double Loss, double Accuracy)? metrics = evalNow ? Evaluate(data, masker, device, progress, state, clock) : null;
                    state.Curve.Add(new PretrainPoint(state.Step, pointLossSum / pointLossCount, metrics?.Loss, metrics?.Accuracy, lr,
                        state.TokensSeen, Math.Round(trainSecondsAtStart + trainClock.Elapsed.TotalSeconds, 3)));
                    PointRecorded?.Invoke(state.Curve[^1]);
                    pointLossSum = 0;
                    pointLossCount = 0;
                }
                if (_options.CheckpointEvery > 0 && state.Step % _options.CheckpointEvery == 0 && state.Step < _options.MaxSteps)
                    Checkpoint(optimizer, state.WithTrainSeconds(trainSecondsAtStart, trainClock), progress, clock);
            }

            var last = state.Curve.Count > 0 ? state.Curve[^1] : null;
            if (last is null || last.Step != state.Step || last.EvalLoss is null)
            {
                var (loss, accuracy) = Evaluate(data, masker, device, progress, state, clock);
                var lr = _options.LearningRate * LinearSchedule.Factor(Math.Max(0, state.Step - 1), _options.EffectiveWarmupSteps, _options.MaxSteps);
                var trainLoss = pointLossCount > 0 ? pointLossSum / pointLossCount : last?.Step == state.Step ? last.TrainLoss : double.NaN;
                if (last?.Step == state.Step) state.Curve.RemoveAt(state.Curve.Count - 1);
                state.Curve.Add(new PretrainPoint(state.Step, trainLoss, loss, accuracy, lr, state.TokensSeen,
                    Math.Round(trainSecondsAtStart + trainClock.Elapsed.TotalSeconds, 3)));
                PointRecorded?.Invoke(state.Curve[^1]);
            }
            state = state.WithTrainSeconds(trainSecondsAtStart, trainClock);
            Checkpoint(optimizer, state, progress, clock);
        }
        finally
        {
            _model.eval();
        }

        var final = state.Curve[^1];
        return new PretrainResult(state.Step, completed && state.Step >= _options.MaxSteps, stopReason,
            state.StepLosses, state.Curve, final.EvalLoss, final.MaskedAccuracy,
            runTokens / Math.Max(1e-9, trainClock.Elapsed.TotalSeconds), state.TokensSeen, state.TrainSeconds,
            cache.TokenCount, data.TrainSequenceCount, resumed);
    }

    /// <summary>Writes the trained model as a Hugging Face <c>BertForMaskedLM</c> folder.</summary>
    public void SaveModel(string destination, IReadOnlyDictionary<string, string>? metadata = null) =>
        MaskedLMCheckpoint.Save(_model, _tokenizerFolder, destination, metadata);

    /// <summary>
    /// Logits at the masked positions and their targets: only those positions go through the vocabulary projection.
    /// The tensors belong to the caller's dispose scope.
    /// </summary>
    private (Tensor Logits, Tensor Targets) MaskedLogits(MaskedBatch batch, Device device)
    {
        var ids = tensor(batch.InputIds, [batch.Rows, batch.Length], ScalarType.Int64, device);
        var mask = tensor(batch.AttentionMask, [batch.Rows, batch.Length], ScalarType.Int64, device);
        var positions = tensor(batch.Positions, ScalarType.Int64, device);
        var targets = tensor(batch.Targets, ScalarType.Int64, device);
        using var output = _model.bert.Forward(ids, zeros_like(ids), mask, outputHiddenStates: false);
        var logits = _model.Predict(output.LastHiddenState.reshape(-1, _model.Config.HiddenSize).index_select(0, positions));
        return (logits, targets);
    }

    private (double Loss, double Accuracy) Evaluate(PretrainData data, MlmMasker masker, Device device, IProgress<PretrainProgress>? progress, RunState state, Stopwatch clock)
    {
        progress?.Report(new PretrainProgress(PretrainPhase.Evaluating, state.Step, _options.MaxSteps, double.NaN, 0, 0, clock.Elapsed, TimeSpan.Zero));
        _model.eval();
        double lossSum = 0;
        long correct = 0, total = 0;
        try
        {
            using var noGrad = no_grad();
            foreach (var batch in data.EvalBatches(masker))
            {
                using var scope = NewDisposeScope();
                var (logits, targets) = MaskedLogits(batch, device);
                lossSum += nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.Sum).item<float>();
                correct += logits.argmax(-1).eq(targets).sum().item<long>();
                total += batch.Targets.Length;
            }
        }
        finally
        {
            _model.train();
        }
        return total == 0 ? (double.NaN, double.NaN) : (lossSum / total, (double)correct / total);
    }

    /// <summary>The checkpoint to resume from: the folder itself, or the previous one left by a crash during the swap.</summary>
    private string? FindCheckpoint()
    {
        var dir = Path.GetFullPath(_options.CheckpointDirectory);
        if (File.Exists(Path.Combine(dir, StateFile))) return dir;
        return AtomicFolder.Recoverable(dir).FirstOrDefault(d => File.Exists(Path.Combine(d, StateFile)));
    }

    /// <summary>Writes weights, optimizer state and run state to a new folder, then swaps it in (never a half-written checkpoint).</summary>
    private void Checkpoint(AdamW optimizer, RunState state, IProgress<PretrainProgress>? progress, Stopwatch clock)
    {
        progress?.Report(new PretrainProgress(PretrainPhase.Checkpointing, state.Step, _options.MaxSteps, double.NaN, 0, 0, clock.Elapsed, TimeSpan.Zero));
        AtomicFolder.Replace(_options.CheckpointDirectory, temp =>
        {
            Directory.CreateDirectory(temp);
            MaskedLMCheckpoint.Save(_model, _tokenizerFolder, Path.Combine(temp, ModelFolder),
                new Dictionary<string, string> { ["berthost.pretrain_step"] = state.Step.ToString() });
            optimizer.save_state_dict(Path.Combine(temp, OptimizerFile));
            File.WriteAllText(Path.Combine(temp, StateFile), state.ToJson());
        });
    }

    /// <summary>The resumable part of a run (state.json).</summary>
    private sealed class RunState
    {
        public int Step { get; set; }
        public long TokensSeen { get; set; }
        public double TrainSeconds { get; set; }
        public List<double> StepLosses { get; init; } = [];
        public List<PretrainPoint> Curve { get; init; } = [];
        public required JsonObject Settings { get; init; }

        public static RunState Fresh(PretrainingOptions o, string corpusKey) => new() { Settings = SettingsOf(o, corpusKey) };

        // What must not change between a checkpoint and its resumption, or the run would not be the same run.
        private static JsonObject SettingsOf(PretrainingOptions o, string corpusKey) => new()
        {
            ["corpus_cache"] = corpusKey,
            ["seed"] = o.Seed,
            ["batch_size"] = o.BatchSize,
            ["grad_accum"] = o.GradientAccumulationSteps,
            ["seq_len"] = o.SequenceLength,
            ["long_seq_len"] = o.LongSequenceLength,
            ["mask_probability"] = o.MaskProbability,
            ["whole_word_masking"] = o.WholeWordMasking,
            ["eval_sequences"] = o.EvalSequences,
        };

        public void CheckCompatible(PretrainingOptions o, string corpusKey, string checkpoint)
        {
            var now = SettingsOf(o, corpusKey);
            var differ = now.Where(kv => !JsonNode.DeepEquals(kv.Value, Settings[kv.Key]))
                .Select(kv => $"{kv.Key} {Settings[kv.Key]?.ToJsonString() ?? "null"} → {kv.Value?.ToJsonString() ?? "null"}").ToList();
            if (differ.Count > 0)
                throw new ArgumentException($"the checkpoint in {checkpoint} was made with other settings ({string.Join(", ", differ)}); " +
                    "use the same settings to resume, or another checkpoint directory to start afresh");
        }

        public RunState WithTrainSeconds(double before, Stopwatch trainClock)
        {
            TrainSeconds = before + trainClock.Elapsed.TotalSeconds;
            return this;
        }

        public string ToJson() => new JsonObject
        {
            ["format"] = 1,
            ["step"] = Step,
            ["tokens_seen"] = TokensSeen,
            ["train_seconds"] = TrainSeconds,
            ["settings"] = Settings.DeepClone(),
            ["step_losses"] = new JsonArray(StepLosses.Select(l => (JsonNode)JsonValue.Create(l)).ToArray()),
            ["curve"] = JsonSerializer.SerializeToNode(Curve, Json),
        }.ToJsonString(Json);

        // A diverged run's NaN losses are still written (as "NaN"), so its checkpoint can be inspected.
        private static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

        public static RunState Load(string path)
        {
            try
            {
                var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
                return new RunState
                {
                    Step = root["step"]!.GetValue<int>(),
                    TokensSeen = root["tokens_seen"]!.GetValue<long>(),
                    TrainSeconds = root["train_seconds"]!.GetValue<double>(),
                    Settings = root["settings"]!.AsObject().DeepClone().AsObject(),
                    StepLosses = root["step_losses"].Deserialize<List<double>>(Json)!,
                    Curve = root["curve"].Deserialize<List<PretrainPoint>>(Json) ?? [],
                };
            }
            catch (Exception e) when (e is JsonException or NullReferenceException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"{path}: not a readable pre-training state ({e.Message})", e);
            }
        }
    }
}

/// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread (System.Progress posts to the thread pool).</summary>
internal sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
