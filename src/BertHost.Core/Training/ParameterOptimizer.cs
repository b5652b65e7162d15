using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Training;

/// <summary>
/// AdamW over named parameters, with weight decay on matrices only (none on biases, LayerNorm weights or any other
/// 1-D parameter), whose per-parameter state (step, exp_avg, exp_avg_sq) can be saved and loaded by parameter key.
/// </summary>
internal sealed class ParameterOptimizer : IDisposable
{
    private readonly List<(string Key, Parameter Parameter)> _ordered;
    private readonly AdamW _adam;

    public ParameterOptimizer(IReadOnlyList<(string Key, Parameter Parameter)> parameters, double lr, double weightDecay)
    {
        var decay = parameters.Where(p => OptimizerGroups.Decays(p.Key, p.Parameter)).ToList();
        var noDecay = parameters.Where(p => !OptimizerGroups.Decays(p.Key, p.Parameter)).ToList();
        var groups = new List<AdamW.ParamGroup>();
        if (decay.Count > 0) groups.Add(new AdamW.ParamGroup(decay.Select(p => p.Parameter), new AdamW.Options { LearningRate = lr, weight_decay = weightDecay }));
        if (noDecay.Count > 0) groups.Add(new AdamW.ParamGroup(noDecay.Select(p => p.Parameter), new AdamW.Options { LearningRate = lr, weight_decay = 0.0 }));
        // AdamW's state_dict lists states group by group, parameter by parameter: this order.
        _ordered = [.. decay, .. noDecay];
        _adam = optim.AdamW(groups, lr);
    }

    public IEnumerable<Parameter> Parameters => _ordered.Select(p => p.Parameter);

    /// <summary>One update at learning rate <paramref name="lr"/>, then the gradients are zeroed.</summary>
    public void Step(double lr)
    {
        foreach (var g in _adam.ParamGroups) g.LearningRate = lr;
        _adam.step();
        _adam.zero_grad();
    }

    private IEnumerable<(string Key, AdamW.State State)> States() =>
        _ordered.Zip(_adam.state_dict().State, (p, s) => (p.Key, (AdamW.State)s));

    /// <summary>The moments as <c>optim/exp_avg/KEY</c> and <c>optim/exp_avg_sq/KEY</c>; the step counts go to <paramref name="steps"/>.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> State(Dictionary<string, long> steps)
    {
        foreach (var (key, s) in States())
        {
            steps[key] = s.step;
            yield return KeyValuePair.Create("optim/exp_avg/" + key, s.exp_avg);
            yield return KeyValuePair.Create("optim/exp_avg_sq/" + key, s.exp_avg_sq);
        }
    }

    public void Load(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, long> steps, string source)
    {
        using var noGrad = no_grad();
        foreach (var (key, s) in States())
        {
            if (!steps.TryGetValue(key, out var step) || !tensors.TryGetValue("optim/exp_avg/" + key, out var avg)
                || !tensors.TryGetValue("optim/exp_avg_sq/" + key, out var avgSq))
                throw new TrainingCheckpointException($"the checkpoint in {source} has no optimizer state for {key}");
            s.step = step;
            s.exp_avg.copy_(avg);
            s.exp_avg_sq.copy_(avgSq);
        }
    }


    public void Dispose() => _adam.Dispose();
}
