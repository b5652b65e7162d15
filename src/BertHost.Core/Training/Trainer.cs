using System.Diagnostics;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Training;

/// <summary>
/// The one training loop for every head: the head supplies its loss and metric (<see cref="IHeadTraining"/>), the
/// trainer supplies batching (seeded shuffle, dynamic padding), AdamW with decay / no-decay groups, linear warmup and
/// decay, gradient clipping and accumulation, per-epoch evaluation, best-weights restore and early stopping.
/// </summary>
public sealed class Trainer
{
    private readonly BertBody _body;
    private readonly IHead _head;
    private readonly IHeadTraining _training;
    private readonly TrainingOptions _options;
    private long _bodyPasses;

    public Trainer(BertBody body, IHead head, TrainingOptions options)
    {
        _body = body;
        _head = head;
        _training = head.Training ?? throw new ArgumentException($"head '{head.Name}' ({head.Kind}) does not support training");
        options.Validate();
        if (options.Mode == TrainingMode.Partial && options.PartialLayers > body.Config.NumHiddenLayers)
            throw new ArgumentException($"partial layers {options.PartialLayers} exceeds the body's {body.Config.NumHiddenLayers} layers");
        _options = options;
    }

    /// <summary>Body forward passes run by this trainer (training, caching and evaluation).</summary>
    public long BodyPasses => Interlocked.Read(ref _bodyPasses);

    private bool BodyTrains => _options.Mode != TrainingMode.Head;

    /// <param name="epochCompleted">Called with each epoch's result as soon as it is known (loss, metrics, time).</param>
    public TrainingResult Train(IReadOnlyList<HeadFeatures> train, IReadOnlyList<HeadFeatures>? eval = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default,
        Action<EpochResult>? epochCompleted = null)
    {
        if (train.Count == 0) throw new ArgumentException("no training examples");
        manual_seed(_options.Seed);
        var rng = new Random(_options.Seed);
        var bodyParams = _body.Model.named_parameters().ToList();
        var savedRequiresGrad = bodyParams.Select(p => p.parameter.requires_grad).ToList();
        using var cache = !BodyTrains && _options.UseFeatureCache ? new FeatureCache(_head.Requirements, _body.Config.NumHiddenLayers) : null;
        try
        {
            foreach (var (name, p) in bodyParams) p.requires_grad = BodyTrains && BodyParameterTrains(name);
            var trainable = _head.Module.named_parameters().Select(p => (name: "head." + p.name, p.parameter))
                .Concat(bodyParams.Where(p => p.parameter.requires_grad).Select(p => (name: "body." + p.name, p.parameter)))
                .ToList();
            foreach (var (_, p) in trainable) p.requires_grad = true;
            var lr = _options.EffectiveLearningRate;
            var decay = trainable.Where(p => Decays(p.name, p.parameter)).Select(p => p.parameter).ToList();
            var noDecay = trainable.Where(p => !Decays(p.name, p.parameter)).Select(p => p.parameter).ToList();
            var groups = new List<AdamW.ParamGroup>();
            if (decay.Count > 0) groups.Add(new AdamW.ParamGroup(decay, new AdamW.Options { LearningRate = lr, weight_decay = _options.WeightDecay }));
            if (noDecay.Count > 0) groups.Add(new AdamW.ParamGroup(noDecay, new AdamW.Options { LearningRate = lr, weight_decay = 0.0 }));
            using var optimizer = optim.AdamW(groups, lr);

            var batchesPerEpoch = (train.Count + _options.BatchSize - 1) / _options.BatchSize;
            var stepsPerEpoch = (batchesPerEpoch + _options.GradientAccumulationSteps - 1) / _options.GradientAccumulationSteps;
            var totalSteps = stepsPerEpoch * _options.Epochs;
            var warmup = (int)Math.Ceiling(totalSteps * _options.WarmupRatio);
            double Factor(int step) => step < warmup ? (step + 1.0) / (warmup + 1.0) : Math.Max(0.0, (double)(totalSteps - step) / Math.Max(1, totalSteps - warmup));

            var epochs = new List<EpochResult>();
            Dictionary<string, Tensor>? best = null;
            IReadOnlyDictionary<string, double>? bestMetrics = null;
            int? bestEpoch = null;
            var sinceBest = 0;
            var stoppedEarly = false;
            var step = 0;
            var order = Enumerable.Range(0, train.Count).ToArray();
            try
            {
                for (var epoch = 1; epoch <= _options.Epochs; epoch++)
                {
                    var epochClock = Stopwatch.StartNew();
                    long epochExamples = 0;
                    var epochSteps = 0;
                    rng.Shuffle(order);
                    SetModes(training: true);
                    double lossSum = 0;
                    var lossCount = 0;
                    optimizer.zero_grad();
                    for (var b = 0; b < batchesPerEpoch; b++)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        var items = order.Skip(b * _options.BatchSize).Take(_options.BatchSize).Select(i => train[i]).ToList();
                        if (cache is not null) Fill(cache, items);
                        using (var scope = NewDisposeScope())
                        {
                            var batch = new HeadBatch(items, _body.Device);
                            using var output = cache is not null ? cache.Assemble(items, _body.Device) : BodyPass(items, withGrad: BodyTrains);
                            var logits = _head.Forward(output, batch);
                            var loss = _training.Loss(logits, batch);
                            lossSum += loss.item<float>();
                            lossCount++;
                            (_options.GradientAccumulationSteps > 1 ? loss.div(_options.GradientAccumulationSteps) : loss).backward();
                        }
                        epochExamples += items.Count;
                        var last = b == batchesPerEpoch - 1;
                        if ((b + 1) % _options.GradientAccumulationSteps != 0 && !last) continue;
                        using (var scope = NewDisposeScope())
                        {
                            if (_options.MaxGradNorm > 0) nn.utils.clip_grad_norm_(trainable.Select(p => p.parameter), _options.MaxGradNorm);
                            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr * Factor(step);
                            optimizer.step();
                            optimizer.zero_grad();
                        }
                        step++;
                        epochSteps++;
                        // Rates come from the current epoch: in head mode the first epoch also fills the feature cache
                        // and later epochs are far faster, so a whole-run average would mislead.
                        var seconds = Math.Max(1e-9, epochClock.Elapsed.TotalSeconds);
                        var rate = epochExamples / seconds;
                        var eta = TimeSpan.FromSeconds(seconds / epochSteps * (totalSteps - step));
                        progress?.Report(new TrainingProgress(epoch, _options.Epochs, step, totalSteps, lossSum / lossCount, rate, eta));
                    }

                    IReadOnlyDictionary<string, double>? metrics = null;
                    if (eval is { Count: > 0 } && (_options.EvalEveryEpoch || epoch == _options.Epochs))
                    {
                        metrics = Evaluate(eval, cache);
                        var primary = _training.CreateMetric().Primary;
                        if (bestMetrics is null || metrics[primary] > bestMetrics[primary])
                        {
                            DisposeAll(best);
                            best = Snapshot();
                            bestMetrics = metrics;
                            bestEpoch = epoch;
                            sinceBest = 0;
                        }
                        else sinceBest++;
                    }
                    var epochResult = new EpochResult(epoch, lossCount == 0 ? double.NaN : lossSum / lossCount, metrics, epochClock.Elapsed.TotalSeconds);
                    epochs.Add(epochResult);
                    epochCompleted?.Invoke(epochResult);
                    if (_options.EarlyStoppingPatience is { } patience && metrics is not null && sinceBest >= patience && epoch < _options.Epochs)
                    {
                        stoppedEarly = true;
                        break;
                    }
                }
                if (best is not null) Restore(best);
            }
            finally
            {
                DisposeAll(best);
            }
            return new TrainingResult(epochs, bestEpoch, bestMetrics, stoppedEarly, BodyPasses);
        }
        finally
        {
            for (var i = 0; i < bodyParams.Count; i++) bodyParams[i].parameter.requires_grad = savedRequiresGrad[i];
            _head.Module.eval();
            _body.Model.eval();
        }
    }

    /// <summary>The head's metrics on <paramref name="data"/> (head and body in eval mode, no autograd).</summary>
    public IReadOnlyDictionary<string, double> Evaluate(IReadOnlyList<HeadFeatures> data) => Evaluate(data, null);

    private IReadOnlyDictionary<string, double> Evaluate(IReadOnlyList<HeadFeatures> data, FeatureCache? cache)
    {
        SetModes(training: false);
        var metric = _training.CreateMetric();
        using (no_grad())
        {
            for (var start = 0; start < data.Count; start += _options.BatchSize)
            {
                var items = data.Skip(start).Take(_options.BatchSize).ToList();
                if (cache is not null) Fill(cache, items);
                using var scope = NewDisposeScope();
                var batch = new HeadBatch(items, _body.Device);
                using var output = cache is not null ? cache.Assemble(items, _body.Device) : BodyPass(items, withGrad: false);
                var logits = _head.Forward(output, batch);
                metric.Update(logits, batch);
            }
        }
        return metric.Compute();
    }

    private void SetModes(bool training)
    {
        if (training) _head.Module.train(); else _head.Module.eval();
        if (training && BodyTrains) _body.Model.train(); else _body.Model.eval();
    }

    /// <summary>Caches the body outputs of the items not cached yet, in one body pass.</summary>
    private void Fill(FeatureCache cache, IReadOnlyList<HeadFeatures> items)
    {
        var missing = items.Where(i => !cache.Contains(i)).ToList();
        if (missing.Count == 0) return;
        using var scope = NewDisposeScope();
        using var output = BodyPass(missing, withGrad: false);
        cache.Add(missing, output);
    }

    private BodyOutput BodyPass(IReadOnlyList<HeadFeatures> items, bool withGrad)
    {
        Interlocked.Increment(ref _bodyPasses);
        var needsStates = _head.Requirements.NeedsHiddenStates;
        var padded = PaddedBatch.Create(items.SelectMany(i => i.Sequences).ToList(), _body.Tokenizer.PadTokenId);
        if (!withGrad) return _body.Forward(padded, needsStates);
        var device = _body.Device;
        using var ids = tensor(padded.InputIds, [padded.BatchSize, padded.SequenceLength], ScalarType.Int64, device);
        using var types = tensor(padded.TokenTypeIds, [padded.BatchSize, padded.SequenceLength], ScalarType.Int64, device);
        using var mask = tensor(padded.AttentionMask, [padded.BatchSize, padded.SequenceLength], ScalarType.Int64, device);
        return _body.Model.Forward(ids, types, mask, needsStates);
    }

    private bool BodyParameterTrains(string name)
    {
        if (_options.Mode == TrainingMode.Full) return true;
        if (name.StartsWith("pooler.", StringComparison.Ordinal)) return true;
        const string prefix = "encoder.layer.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return false;
        var rest = name[prefix.Length..];
        var index = int.Parse(rest[..rest.IndexOf('.')]);
        return index >= _body.Config.NumHiddenLayers - _options.PartialLayers;
    }

    /// <summary>No weight decay on biases, LayerNorm weights, or any other 1-D parameter.</summary>
    private static bool Decays(string name, Tensor p) =>
        p.dim() > 1 && !name.EndsWith(".bias", StringComparison.Ordinal) && !name.Contains("LayerNorm", StringComparison.OrdinalIgnoreCase)
        && !name.Contains("layer_norm", StringComparison.OrdinalIgnoreCase);

    private IEnumerable<(string Key, Tensor Value)> LiveState()
    {
        foreach (var (k, v) in _head.Module.state_dict()) yield return ("head." + k, v);
        if (BodyTrains)
            foreach (var (k, v) in _body.Model.state_dict()) yield return ("body." + k, v);
    }

    private Dictionary<string, Tensor> Snapshot()
    {
        using var noGrad = no_grad();
        return LiveState().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
    }

    private void Restore(Dictionary<string, Tensor> snapshot)
    {
        using var noGrad = no_grad();
        foreach (var (k, v) in LiveState()) v.copy_(snapshot[k]);
    }

    private static void DisposeAll(Dictionary<string, Tensor>? tensors)
    {
        if (tensors is null) return;
        foreach (var t in tensors.Values) t.Dispose();
        tensors.Clear();
    }
}
