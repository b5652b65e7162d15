using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Text;
using TorchSharp;
using static TorchSharp.torch;
using BertHost.Core.Body;
using BertHost.Core.Backends;
using BertHost.Core.Lora;

namespace BertHost.Core.Training;

/// <summary>
/// The one training loop for every head: the head supplies its loss and metric (<see cref="IHeadTraining"/>), the
/// trainer supplies batching (seeded shuffle, dynamic padding), AdamW with decay / no-decay groups, linear warmup and
/// decay, gradient clipping and accumulation, per-epoch evaluation, best-weights restore, early stopping and resumable
/// checkpoints. Several heads train jointly on the one body as a multitask run (one <see cref="TrainingTask"/> each).
/// </summary>
/// <remarks>
/// Runs are deterministic given <see cref="TrainingOptions.Seed"/>: each epoch's shuffle comes from (seed, epoch, task)
/// and torch's generator is reseeded from (seed, epoch, step, micro-batch) before every forward pass, so dropout masks
/// do not depend on what ran before and a resumed run repeats the uninterrupted one.
/// </remarks>
public sealed class Trainer
{
    private readonly BertBody _body;
    private readonly IReadOnlyList<IHead> _heads;
    private readonly TrainingOptions _options;
    private long _bodyPasses;
    private LowPrecisionBody? _lowPrecision;

    public Trainer(BertBody body, IHead head, TrainingOptions options, IReadOnlyDictionary<string, LoraAdapter>? adapters = null)
        : this(body, [head], options, adapters) { }

    /// <summary>A trainer for <paramref name="heads"/> sharing <paramref name="body"/> (several heads = a multitask run).</summary>
    /// <param name="adapters">Body adapters the heads already have (LoRA head folders), by head name: head mode and
    /// evaluation apply them, frozen, in the heads' body passes (the caller keeps owning them). Lora mode trains new
    /// ones instead; partial and full mode refuse a head with an adapter.</param>
    public Trainer(BertBody body, IReadOnlyList<IHead> heads, TrainingOptions options, IReadOnlyDictionary<string, LoraAdapter>? adapters = null)
    {
        if (heads.Count == 0) throw new ArgumentException("no heads to train");
        foreach (var head in heads)
            if (head.Training is null) throw new ArgumentException($"head '{head.Name}' ({head.Kind}) does not support training");
        if (heads.GroupBy(h => h.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } dup)
            throw new ArgumentException($"head '{dup.Key}' is given more than once");
        options.Validate();
        if (options.Mode == TrainingMode.Partial && options.PartialLayers > body.Config.NumHiddenLayers)
            throw new ArgumentException($"partial layers {options.PartialLayers} exceeds the body's {body.Config.NumHiddenLayers} layers");
        _body = body;
        _heads = heads;
        _options = options;
        Precision = ResolvePrecision(options.Precision, body, options.Mode);
        // One adapter per head, seeded from the run's seed and the head's position, so a resumed run starts alike.
        if (options.Mode == TrainingMode.Lora)
            Adapters = heads.Select((h, i) => (h.Name, LoraAdapter.Create(body.Model, options.Lora, options.Seed * 7919L + i)))
                .ToDictionary(x => x.Name, x => x.Item2, StringComparer.Ordinal);
        else if (adapters is { Count: > 0 })
        {
            if (options.Mode is TrainingMode.Partial or TrainingMode.Full)
                throw new ArgumentException($"head '{adapters.Keys.First()}' has a LoRA adapter: train it with mode lora (a new adapter) or head (the head on the adapted body), not {options.Mode.ToString().ToLowerInvariant()}");
            _frozenAdapters = adapters;
        }
    }

    private readonly IReadOnlyDictionary<string, LoraAdapter>? _frozenAdapters;

    /// <summary>
    /// Lora mode: each head's body adapter by head name (trained by <see cref="Train(IReadOnlyList{TrainingTask}, IProgress{TrainingProgress}?, CancellationToken, Action{EpochResult}?)"/>,
    /// holding the best epoch's weights after it); the caller saves them with the head (<see cref="LoraHeadFolder.Attach"/>)
    /// and disposes them. Empty in the other modes.
    /// </summary>
    public IReadOnlyDictionary<string, LoraAdapter> Adapters { get; } = new Dictionary<string, LoraAdapter>();

    private LoraAdapter? AdapterOf(IHead head) => Adapters.GetValueOrDefault(head.Name) ?? _frozenAdapters?.GetValueOrDefault(head.Name);

    /// <summary>Only a trained adapter (lora mode) steps and is checkpointed; a frozen one just applies.</summary>
    private LoraAdapter? TrainedAdapterOf(IHead head) => Adapters.GetValueOrDefault(head.Name);

    /// <summary>The precision the body's passes run in: <see cref="TrainingOptions.Precision"/> with auto resolved.</summary>
    public TrainingPrecision Precision { get; }

    private static TrainingPrecision ResolvePrecision(TrainingPrecision requested, BertBody body, TrainingMode mode)
    {
        if (requested == TrainingPrecision.Fp16)
            throw new ArgumentException("precision fp16 needs loss scaling (a gradient scaler), which TorchSharp 0.107 does not provide; use bf16");
        if (requested == TrainingPrecision.Fp32) return requested;
        // The bf16 copy of the body is a second module tree the adapters are not attached to.
        if (mode == TrainingMode.Lora && requested == TrainingPrecision.Bf16)
            throw new ArgumentException("precision bf16 is not available in lora mode (the adapters train in fp32 on the fp32 body); use fp32");
        if (mode == TrainingMode.Lora) return TrainingPrecision.Fp32;
        if (body.DType != ScalarType.Float32)
            throw new ArgumentException($"precision {requested.ToString().ToLowerInvariant()} needs a float32 body (the master weights), but the body is {body.DType}");
        if (requested == TrainingPrecision.Bf16) return requested;
        return body.Device.type == DeviceType.CUDA || CpuHasNativeBf16() ? TrainingPrecision.Bf16 : TrainingPrecision.Fp32;
    }

    private static bool CpuHasNativeBf16()
    {
        try
        {
            var flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) ?? "";
            return flags.Split(' ').Any(f => f is "avx512_bf16" or "amx_bf16");
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Body forward passes run by this trainer (training, caching and evaluation).</summary>
    public long BodyPasses => Interlocked.Read(ref _bodyPasses);

    private bool BodyTrains => _options.Mode != TrainingMode.Head;

    /// <summary>Trains the trainer's single head.</summary>
    /// <param name="epochCompleted">Called with each epoch's result as soon as it is known (loss, metrics, time).</param>
    public TrainingResult Train(IReadOnlyList<HeadFeatures> train, IReadOnlyList<HeadFeatures>? eval = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default,
        Action<EpochResult>? epochCompleted = null)
    {
        if (_heads.Count != 1) throw new InvalidOperationException($"this trainer has {_heads.Count} heads: give one TrainingTask per head");
        return Train([new TrainingTask(_heads[0], train, eval)], progress, cancellationToken, epochCompleted);
    }

    /// <summary>
    /// Trains every head on its task. Each optimizer step's batches come from one task; an epoch runs every task's
    /// batches once, the tasks' steps interleaved in a seeded random order (so each task's share of the steps is its
    /// share of the data). With <see cref="TrainingOptions.CheckpointDirectory"/> set, a run resumes from the
    /// checkpoint found there and writes new ones as it goes; cancelling throws <see cref="OperationCanceledException"/>
    /// and leaves the last checkpoint to resume from.
    /// </summary>
    /// <exception cref="TrainingCheckpointException">The checkpoint is unreadable, incomplete or from a different run.</exception>
    public TrainingResult Train(IReadOnlyList<TrainingTask> tasks, IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default, Action<EpochResult>? epochCompleted = null)
    {
        CheckTasks(tasks);
        foreach (var t in tasks) t.Head.Training!.PrepareTraining(t.Train);
        var bodyParams = _body.Model.named_parameters().ToList();
        var savedRequiresGrad = bodyParams.Select(p => p.parameter.requires_grad).ToList();
        var caches = tasks.Select(t => !BodyTrains && _options.UseFeatureCache ? new FeatureCache(t.Head.Requirements, _body.Config.NumHiddenLayers) : null).ToList();
        var optimizers = new List<ParameterOptimizer>();
        Dictionary<string, Tensor>? best = null;
        try
        {
            // Packed inference copies of weights that are about to change would go stale.
            if (BodyTrains && _options.Mode != TrainingMode.Lora) _body.ReleasePackedWeights();
            foreach (var (name, p) in bodyParams) p.requires_grad = BodyTrains && BodyParameterTrains(name);
            var bodyTrainable = bodyParams.Where(p => p.parameter.requires_grad).Select(p => ("body/" + p.name, p.parameter)).ToList();
            if (Precision == TrainingPrecision.Bf16) _lowPrecision = new LowPrecisionBody(_body.Model, ScalarType.BFloat16, _body.Device);
            var lr = _options.EffectiveLearningRate;
            // One optimizer per head and one for the body: a head only steps on its own task's batches (AdamW here
            // would otherwise move every head by its momentum and decay on the other tasks' steps too).
            var bodyOptimizer = bodyTrainable.Count > 0 ? new ParameterOptimizer(bodyTrainable, lr, _options.WeightDecay) : null;
            if (bodyOptimizer is not null) optimizers.Add(bodyOptimizer);
            var headOptimizers = tasks.Select(t =>
            {
                var ps = t.Head.Module.named_parameters().Select(p => (HeadKey(t, p.name), p.parameter)).ToList();
                // A head's adapter steps with it: it only ever sees that head's batches.
                if (TrainedAdapterOf(t.Head) is { } adapter) ps.AddRange(adapter.NamedParameters().Select(p => (HeadKey(t, LoraAdapter.KeyPrefix + p.Key), p.Parameter)));
                foreach (var (_, p) in ps) p.requires_grad = true;
                var o = new ParameterOptimizer(ps, lr, _options.WeightDecay);
                optimizers.Add(o);
                return o;
            }).ToList();
            IEnumerable<KeyValuePair<string, Tensor>> LiveState()
            {
                foreach (var t in tasks)
                {
                    foreach (var (k, v) in t.Head.Module.state_dict())
                        yield return KeyValuePair.Create(HeadKey(t, k), v);
                    if (TrainedAdapterOf(t.Head) is { } adapter)
                        foreach (var (k, p) in adapter.NamedParameters())
                            yield return KeyValuePair.Create(HeadKey(t, LoraAdapter.KeyPrefix + k), (Tensor)p);
                }
                foreach (var (k, p) in bodyTrainable) yield return KeyValuePair.Create(k, (Tensor)p);
            }

            var plans = new Dictionary<int, List<PlannedStep>>();
            List<PlannedStep> Plan(int epoch)
            {
                if (!plans.TryGetValue(epoch, out var plan)) plans[epoch] = plan = PlanEpoch(tasks, epoch);
                return plan;
            }
            var stepsPerEpoch = Plan(1).Count;
            var totalSteps = stepsPerEpoch * _options.Epochs;
            var warmup = (int)Math.Ceiling(totalSteps * _options.WarmupRatio);
            double Factor(int step) => LinearSchedule.Factor(step, warmup, totalSteps);

            var identity = Identity(tasks);
            var s = new CheckpointState { Identity = identity, Epoch = 1, LossSums = new double[tasks.Count], LossCounts = new int[tasks.Count] };
            int? resumedEpoch = null, resumedStep = null;
            var dir = _options.CheckpointDirectory;
            if (dir is not null && TrainingCheckpoint.Exists(dir))
            {
                s = TrainingCheckpoint.ReadState(dir);
                var diffs = TrainingCheckpoint.Differences(s.Identity, identity);
                if (diffs.Count > 0)
                    throw new TrainingCheckpointException($"the checkpoint in {dir} belongs to a different run: {string.Join("; ", diffs)}");
                best = Resume(dir, s, LiveState().ToDictionary(kv => kv.Key, kv => kv.Value), optimizers);
                _lowPrecision?.CopyWeights();
                resumedEpoch = s.Epoch;
                resumedStep = s.StepInEpoch;
            }
            void Checkpoint()
            {
                if (dir is null) return;
                using var scope = NewDisposeScope();
                var tensors = LiveState().Select(kv => KeyValuePair.Create("model/" + kv.Key, kv.Value)).ToList();
                foreach (var o in optimizers) tensors.AddRange(o.State(s.OptimizerSteps));
                if (best is not null) tensors.AddRange(best.Select(kv => KeyValuePair.Create("best/" + kv.Key, kv.Value)));
                TrainingCheckpoint.Write(dir, s, tensors);
            }

            FillCaches(tasks, caches, progress as IProgress<FeatureCacheProgress>, cancellationToken);

            for (; s.Epoch <= _options.Epochs && !s.StoppedEarly; s.Epoch++)
            {
                var epoch = s.Epoch;
                var plan = Plan(epoch);
                var epochClock = Stopwatch.StartNew();
                var priorSeconds = s.EpochSeconds;
                SetModes(tasks, training: true);
                for (var k = s.StepInEpoch; k < plan.Count; k++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var planned = plan[k];
                    var task = tasks[planned.Task];
                    var cache = caches[planned.Task];
                    for (var j = 0; j < planned.Batches.Count; j++)
                    {
                        // Dropout masks depend only on where the batch is in the run, so a resumed run draws the same ones.
                        Reseed(Mix(_options.Seed, epoch, k, j + 1));
                        var items = planned.Batches[j].Select(i => task.Train[i]).ToList();
                        if (cache is not null) Fill(task.Head, cache, items);
                        using var scope = NewDisposeScope();
                        var batch = new HeadBatch(items, _body.Device);
                        using var output = cache is not null ? cache.Assemble(items, _body.Device) : BodyPass(task.Head, items, withGrad: BodyTrains);
                        var logits = task.Head.Forward(output, batch);
                        var loss = task.Head.Training!.Loss(logits, batch);
                        s.LossSums[planned.Task] += loss.item<float>();
                        s.LossCounts[planned.Task]++;
                        (_options.GradientAccumulationSteps > 1 ? loss.div(_options.GradientAccumulationSteps) : loss).backward();
                        s.EpochExamples += items.Count;
                    }
                    using (var scope = NewDisposeScope())
                    {
                        _lowPrecision?.MoveGradients();
                        var stepping = bodyOptimizer is null ? [headOptimizers[planned.Task]] : new[] { bodyOptimizer, headOptimizers[planned.Task] };
                        if (_options.MaxGradNorm > 0) nn.utils.clip_grad_norm_(stepping.SelectMany(o => o.Parameters), _options.MaxGradNorm);
                        foreach (var o in stepping) o.Step(lr * Factor(s.GlobalStep));
                        if (bodyOptimizer is not null) _lowPrecision?.CopyWeights();
                    }
                    s.GlobalStep++;
                    s.StepInEpoch = k + 1;
                    s.EpochSeconds = priorSeconds + epochClock.Elapsed.TotalSeconds;
                    if (_options.CheckpointEverySteps is { } every && s.GlobalStep % every == 0 && k + 1 < plan.Count) Checkpoint();
                    // Rates come from the current epoch: in head mode the first epoch also fills the feature cache
                    // and later epochs are far faster, so a whole-run average would mislead.
                    var seconds = Math.Max(1e-9, epochClock.Elapsed.TotalSeconds);
                    var rate = s.EpochExamples / Math.Max(1e-9, s.EpochSeconds);
                    var eta = TimeSpan.FromSeconds(seconds / (k + 1 - (resumedEpoch == epoch ? resumedStep ?? 0 : 0)) * (totalSteps - s.GlobalStep));
                    progress?.Report(new TrainingProgress(epoch, _options.Epochs, s.GlobalStep, totalSteps,
                        s.LossSums.Sum() / Math.Max(1, s.LossCounts.Sum()), rate, eta, tasks.Count > 1 ? task.Name : null));
                }

                var result = EndEpoch(tasks, caches, s, epoch, ref best, LiveState);
                s.Epochs.Add(result);
                s.StoppedEarly = _options.EarlyStoppingPatience is { } patience && result.Metrics is not null && s.SinceBest >= patience && epoch < _options.Epochs;
                s.StepInEpoch = 0;
                s.EpochExamples = 0;
                s.EpochSeconds = 0;
                Array.Clear(s.LossSums);
                Array.Clear(s.LossCounts);
                // The checkpoint names the next epoch, so a resume after the last one finds the run complete.
                s.Epoch++;
                Checkpoint();
                s.Epoch--;
                epochCompleted?.Invoke(result);
            }
            if (best is not null) Restore(best, LiveState());
            return new TrainingResult(s.Epochs, s.BestEpoch, s.BestMetrics, s.StoppedEarly, BodyPasses, resumedEpoch, resumedStep);
        }
        finally
        {
            DisposeAll(best);
            _lowPrecision?.Dispose();
            _lowPrecision = null;
            foreach (var o in optimizers) o.Dispose();
            foreach (var c in caches) c?.Dispose();
            for (var i = 0; i < bodyParams.Count; i++) bodyParams[i].parameter.requires_grad = savedRequiresGrad[i];
            SetModes(tasks, training: false);
        }
    }

    /// <summary>The single head's metrics on <paramref name="data"/> (head and body in eval mode, no autograd).</summary>
    public IReadOnlyDictionary<string, double> Evaluate(IReadOnlyList<HeadFeatures> data) => Evaluate(_heads[0], data, null);

    /// <summary><paramref name="head"/>'s metrics on <paramref name="data"/> (head and body in eval mode, no autograd).</summary>
    public IReadOnlyDictionary<string, double> Evaluate(IHead head, IReadOnlyList<HeadFeatures> data) => Evaluate(head, data, null);

    private void CheckTasks(IReadOnlyList<TrainingTask> tasks)
    {
        if (tasks.Count == 0) throw new ArgumentException("no training tasks");
        foreach (var t in tasks)
        {
            if (!_heads.Contains(t.Head)) throw new ArgumentException($"head '{t.Name}' is not one of this trainer's heads");
            if (t.Train.Count == 0) throw new ArgumentException(tasks.Count == 1 ? "no training examples" : $"task '{t.Name}': no training examples");
        }
        if (tasks.Select(t => t.Head).Distinct().Count() != tasks.Count) throw new ArgumentException("a head has more than one task");
    }

    /// <summary>Evaluates every task that has eval data, keeps the best weights and counts epochs without improvement.</summary>
    private EpochResult EndEpoch(IReadOnlyList<TrainingTask> tasks, List<FeatureCache?> caches, CheckpointState s, int epoch,
        ref Dictionary<string, Tensor>? best, Func<IEnumerable<KeyValuePair<string, Tensor>>> liveState)
    {
        var perTask = new Dictionary<string, TaskEpochResult>();
        var primaries = new List<double>();
        Dictionary<string, double>? metrics = null;
        var evaluate = _options.EvalEveryEpoch || epoch == _options.Epochs;
        for (var t = 0; t < tasks.Count; t++)
        {
            IReadOnlyDictionary<string, double>? m = null;
            if (evaluate && tasks[t].Eval is { Count: > 0 } eval)
            {
                m = Evaluate(tasks[t].Head, eval, caches[t]);
                primaries.Add(m[tasks[t].Head.Training!.CreateMetric().Primary]);
                metrics ??= [];
                foreach (var (k, v) in m) metrics[tasks.Count == 1 ? k : $"{tasks[t].Name}.{k}"] = v;
            }
            perTask[tasks[t].Name] = new TaskEpochResult(s.LossCounts[t] == 0 ? double.NaN : s.LossSums[t] / s.LossCounts[t], m);
        }
        if (metrics is not null)
        {
            if (tasks.Count > 1) metrics[TrainingMetrics.MeanPrimary] = primaries.Average();
            var score = primaries.Average();
            if (s.BestMetrics is null || score > BestScore(tasks, s.BestMetrics))
            {
                DisposeAll(best);
                best = Snapshot(liveState());
                s.BestMetrics = metrics;
                s.BestEpoch = epoch;
                s.SinceBest = 0;
            }
            else s.SinceBest++;
        }
        var count = s.LossCounts.Sum();
        return new EpochResult(epoch, count == 0 ? double.NaN : s.LossSums.Sum() / count, metrics, s.EpochSeconds, perTask);
    }

    private static double BestScore(IReadOnlyList<TrainingTask> tasks, IReadOnlyDictionary<string, double> best) =>
        tasks.Count == 1 ? best[tasks[0].Head.Training!.CreateMetric().Primary] : best[TrainingMetrics.MeanPrimary];

    /// <summary>
    /// The optimizer steps of one epoch: each task's examples shuffled by (seed, epoch, task), cut into batches, the
    /// batches grouped by <see cref="TrainingOptions.GradientAccumulationSteps"/>; with several tasks the steps are
    /// interleaved by a seeded shuffle.
    /// </summary>
    private List<PlannedStep> PlanEpoch(IReadOnlyList<TrainingTask> tasks, int epoch)
    {
        var steps = new List<PlannedStep>();
        for (var t = 0; t < tasks.Count; t++)
        {
            var order = Enumerable.Range(0, tasks[t].Train.Count).ToArray();
            new Random(Mix(_options.Seed, epoch, t, 0)).Shuffle(order);
            var batches = order.Chunk(_options.BatchSize).ToList();
            steps.AddRange(batches.Chunk(_options.GradientAccumulationSteps).Select(b => new PlannedStep(t, b)));
        }
        if (tasks.Count == 1) return steps;
        var interleaved = steps.ToArray();
        new Random(Mix(_options.Seed, epoch, -1, 0)).Shuffle(interleaved);
        return [.. interleaved];
    }

    private sealed record PlannedStep(int Task, IReadOnlyList<int[]> Batches);

    /// <summary>A non-negative seed from the run's seed and a position (splitmix64 finaliser).</summary>
    private static int Mix(int seed, int epoch, int a, int b)
    {
        unchecked
        {
            var z = (ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)epoch * 0xBF58476D1CE4E5B9UL ^ (ulong)(a + 1) * 0x94D049BB133111EBUL ^ (ulong)b * 0xD6E8FEB86659FD93UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return (int)((z ^ (z >> 31)) & 0x7FFFFFFF);
        }
    }

    private void Reseed(int seed)
    {
        manual_seed(seed);
        if (_body.Device.type == DeviceType.CUDA) cuda.manual_seed_all(seed);
    }

    /// <summary>What a resumed run must share with its checkpoint: options, body, and each task's head and data.</summary>
    private JsonObject Identity(IReadOnlyList<TrainingTask> tasks) => new()
    {
        ["options"] = _options.ToJson(),
        ["body_fingerprint"] = _body.Fingerprint,
        ["tasks"] = new JsonArray(tasks.Select(t => (JsonNode)new JsonObject
        {
            ["head"] = t.Name,
            ["kind"] = t.Head.Kind,
            ["labels"] = new JsonArray(t.Head.Labels.Select(l => (JsonNode)l).ToArray()),
            ["train"] = DataIdentity(t.Train),
            ["eval"] = t.Eval is null ? null : DataIdentity(t.Eval),
        }).ToArray()),
    };

    /// <summary>Example count and a SHA-256 of the examples' token ids and labels (their source file and line left out).</summary>
    private static JsonObject DataIdentity(IReadOnlyList<HeadFeatures> data)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var item in data)
        {
            foreach (var seq in item.Sequences)
            {
                hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(seq.InputIds.AsSpan()));
                hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(seq.TokenTypeIds.AsSpan()));
            }
            if (item.State is { } state)
            {
                var node = JsonSerializer.SerializeToNode(state, state.GetType());
                if (node is JsonObject o) o.Remove("Source");
                hash.AppendData(System.Text.Encoding.UTF8.GetBytes(node?.ToJsonString() ?? ""));
            }
            hash.AppendData([0xFF]);
        }
        return new JsonObject { ["examples"] = data.Count, ["sha256"] = Convert.ToHexStringLower(hash.GetHashAndReset()) };
    }

    /// <summary>Loads a checkpoint's weights and optimizer state into the live ones; returns its best-epoch snapshot.</summary>
    private static Dictionary<string, Tensor>? Resume(string dir, CheckpointState s, Dictionary<string, Tensor> live, List<ParameterOptimizer> optimizers)
    {
        var tensors = TrainingCheckpoint.ReadTensors(dir, s);
        try
        {
            using var noGrad = no_grad();
            foreach (var (k, v) in live)
            {
                if (!tensors.TryGetValue("model/" + k, out var saved))
                    throw new TrainingCheckpointException($"the checkpoint in {dir} has no tensor model/{k}");
                v.copy_(saved);
            }
            foreach (var o in optimizers) o.Load(tensors, s.OptimizerSteps, dir);
            var best = tensors.Where(kv => kv.Key.StartsWith("best/", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key["best/".Length..], kv => kv.Value.to(live[kv.Key["best/".Length..]].device).DetachFromDisposeScope());
            return best.Count == 0 ? null : best;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    private static string HeadKey(TrainingTask task, string name) => $"heads/{task.Name}/{name}";

    private IReadOnlyDictionary<string, double> Evaluate(IHead head, IReadOnlyList<HeadFeatures> data, FeatureCache? cache)
    {
        var wasTraining = head.Module.training;
        head.Module.eval();
        _body.Model.eval();
        _lowPrecision?.SetTraining(false);
        var metric = head.Training!.CreateMetric();
        try
        {
            using (no_grad())
            {
                for (var start = 0; start < data.Count; start += _options.BatchSize)
                {
                    var items = data.Skip(start).Take(_options.BatchSize).ToList();
                    if (cache is not null) Fill(head, cache, items);
                    using var scope = NewDisposeScope();
                    var batch = new HeadBatch(items, _body.Device);
                    using var output = cache is not null ? cache.Assemble(items, _body.Device) : BodyPass(head, items, withGrad: false);
                    var logits = head.Forward(output, batch);
                    metric.Update(logits, batch);
                }
            }
        }
        finally
        {
            if (wasTraining)
            {
                head.Module.train();
                if (BodyTrains) _body.Model.train();
                _lowPrecision?.SetTraining(BodyTrains);
            }
        }
        return metric.Compute();
    }

    private void SetModes(IReadOnlyList<TrainingTask> tasks, bool training)
    {
        foreach (var t in tasks)
            if (training) t.Head.Module.train(); else t.Head.Module.eval();
        if (training && BodyTrains) _body.Model.train(); else _body.Model.eval();
        _lowPrecision?.SetTraining(training && BodyTrains);
    }

    /// <summary>Padded tokens (rows × longest row) per body pass while filling the feature cache: the serving default.</summary>
    internal const int CacheFillBatchTokens = 16384;

    /// <summary>Rows per body pass while filling the feature cache.</summary>
    internal const int CacheFillBatchRows = 256;

    /// <summary>
    /// Head mode: runs the frozen body once over every training and evaluation example before the first step, as the
    /// serving path does — examples sorted by length and cut into passes by a token budget (so a pass pads little),
    /// padded tokens skipped in every Linear and LayerNorm (<see cref="BertBody.ForwardSkippingPadding"/>, prepacked
    /// weights), no autograd. Filling lazily, batch by shuffled batch, padded every batch of 16 to its longest
    /// sentence and ran the padding through the whole body. The cached values do not depend on which pass computed
    /// them beyond float rounding, and the order of passes is fixed, so runs stay deterministic.
    /// </summary>
    private void FillCaches(IReadOnlyList<TrainingTask> tasks, List<FeatureCache?> caches, IProgress<FeatureCacheProgress>? progress,
        CancellationToken cancellationToken)
    {
        var work = new List<(int Task, HeadFeatures Item)>();
        for (var t = 0; t < tasks.Count; t++)
        {
            if (caches[t] is not { } cache) continue;
            var seen = new HashSet<HeadFeatures>(ReferenceEqualityComparer.Instance);
            // The last epoch always evaluates, so evaluation examples are always needed.
            var items = tasks[t].Eval is { } eval ? tasks[t].Train.Concat(eval) : tasks[t].Train;
            foreach (var item in items)
                if (!cache.Contains(item) && seen.Add(item)) work.Add((t, item));
        }
        if (work.Count == 0) return;
        _body.Model.eval();   // head mode: the body is frozen, and the padding-skipping pass needs eval mode
        var clock = Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        var done = 0;
        // Stable sort: ties keep data order, so the passes (and their float rounding) are the same on every run.
        foreach (var group in work.GroupBy(w => w.Task))
        {
            var head = tasks[group.Key].Head;
            var cache = caches[group.Key]!;
            var sorted = group.Select(w => w.Item).OrderBy(i => i.Sequences.Max(q => q.Length)).ToList();
            foreach (var pass in CutByTokens(sorted))
            {
                cancellationToken.ThrowIfCancellationRequested();
                using (var scope = NewDisposeScope())
                {
                    using var output = CachePass(head, pass);
                    cache.Add(pass, output);
                }
                done += pass.Count;
                var elapsed = clock.Elapsed;
                if (progress is null || (done < work.Count && elapsed - lastReport < TimeSpan.FromSeconds(2))) continue;
                lastReport = elapsed;
                var rate = done / Math.Max(1e-9, elapsed.TotalSeconds);
                progress.Report(new FeatureCacheProgress(done, work.Count, rate, TimeSpan.FromSeconds((work.Count - done) / Math.Max(1e-9, rate))));
            }
        }
    }

    /// <summary>Consecutive items (already sorted by length) cut so a pass stays within the token and row budgets.</summary>
    private static IEnumerable<List<HeadFeatures>> CutByTokens(IReadOnlyList<HeadFeatures> sorted)
    {
        var current = new List<HeadFeatures>();
        int rows = 0, longest = 0;
        foreach (var item in sorted)
        {
            var itemRows = item.Sequences.Count;
            var newLongest = Math.Max(longest, item.Sequences.Max(q => q.Length));
            var fits = rows + itemRows <= CacheFillBatchRows && (long)(rows + itemRows) * newLongest <= CacheFillBatchTokens;
            if (current.Count > 0 && !fits)
            {
                yield return current;
                current = [];
                rows = 0;
                newLongest = item.Sequences.Max(q => q.Length);
            }
            current.Add(item);
            rows += itemRows;
            longest = newLongest;
        }
        if (current.Count > 0) yield return current;
    }

    /// <summary>The serving pass over <paramref name="items"/> (the low-precision copy's pass when training runs in bf16).</summary>
    private BodyOutput CachePass(IHead head, IReadOnlyList<HeadFeatures> items)
    {
        if (_lowPrecision is not null) return BodyPass(head, items, withGrad: false);
        Interlocked.Increment(ref _bodyPasses);
        using var lora = OpenAdapter(head);
        var padded = PaddedBatch.Create(items.SelectMany(i => i.Sequences).ToList(), _body.Tokenizer.PadTokenId);
        return _body.ForwardSkippingPadding(padded, head.Requirements.NeedsHiddenStates);
    }

    /// <summary>Caches the body outputs of the items not cached yet, in one body pass.</summary>
    private void Fill(IHead head, FeatureCache cache, IReadOnlyList<HeadFeatures> items)
    {
        var missing = items.Where(i => !cache.Contains(i)).ToList();
        if (missing.Count == 0) return;
        using var scope = NewDisposeScope();
        using var output = BodyPass(head, missing, withGrad: false);
        cache.Add(missing, output);
    }

    /// <summary>
    /// The head's adapter (trained in lora mode, or a LoRA head's frozen one) opened over this pass: its update goes
    /// into every targeted projection, as when the head is served; null for a plain head.
    /// </summary>
    private LoraPass? OpenAdapter(IHead head) => AdapterOf(head) is { } adapter ? LoraPass.Enter(_body.Model, [LoraSegment.All(adapter)]) : null;

    private BodyOutput BodyPass(IHead head, IReadOnlyList<HeadFeatures> items, bool withGrad)
    {
        Interlocked.Increment(ref _bodyPasses);
        using var lora = OpenAdapter(head);
        var needsStates = head.Requirements.NeedsHiddenStates;
        var padded = PaddedBatch.Create(items.SelectMany(i => i.Sequences).ToList(), _body.Tokenizer.PadTokenId);
        if (!withGrad && _lowPrecision is null) return _body.Forward(padded, needsStates);
        var device = _body.Device;
        using var ids = tensor(padded.InputIds, [padded.BatchSize, padded.SequenceLength], ScalarType.Int64, device);
        using var types = tensor(padded.TokenTypeIds, [padded.BatchSize, padded.SequenceLength], ScalarType.Int64, device);
        using var mask = tensor(padded.AttentionMask, [padded.BatchSize, padded.SequenceLength], ScalarType.Int64, device);
        if (_lowPrecision is not null) return _lowPrecision.Forward(ids, types, mask, needsStates, withGrad);
        return _body.Model.Forward(ids, types, mask, needsStates);
    }

    private bool BodyParameterTrains(string name)
    {
        if (_options.Mode == TrainingMode.Full) return true;
        if (_options.Mode == TrainingMode.Lora) return false;
        if (name.StartsWith("pooler.", StringComparison.Ordinal)) return true;
        const string prefix = "encoder.layer.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return false;
        var rest = name[prefix.Length..];
        var index = int.Parse(rest[..rest.IndexOf('.')]);
        return index >= _body.Config.NumHiddenLayers - _options.PartialLayers;
    }

    private static Dictionary<string, Tensor> Snapshot(IEnumerable<KeyValuePair<string, Tensor>> live)
    {
        using var noGrad = no_grad();
        return live.ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
    }

    private static void Restore(Dictionary<string, Tensor> snapshot, IEnumerable<KeyValuePair<string, Tensor>> live)
    {
        using var noGrad = no_grad();
        foreach (var (k, v) in live) v.copy_(snapshot[k]);
    }

    private static void DisposeAll(Dictionary<string, Tensor>? tensors)
    {
        if (tensors is null) return;
        foreach (var t in tensors.Values) t.Dispose();
        tensors.Clear();
    }
}
