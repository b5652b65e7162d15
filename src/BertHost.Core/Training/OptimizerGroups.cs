using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Training;

/// <summary>AdamW with BERT's two parameter groups: weight decay on matrices, none on biases and LayerNorm.</summary>
public static class OptimizerGroups
{
    /// <summary>No weight decay on biases, LayerNorm weights, or any other 1-D parameter.</summary>
    public static bool Decays(string name, Tensor p) =>
        p.dim() > 1 && !name.EndsWith(".bias", StringComparison.Ordinal) && !name.Contains("LayerNorm", StringComparison.OrdinalIgnoreCase)
        && !name.Contains("layer_norm", StringComparison.OrdinalIgnoreCase);

    /// <summary>An AdamW over <paramref name="parameters"/> split into the decay and no-decay groups (empty groups left out).</summary>
    public static AdamW CreateAdamW(IReadOnlyList<(string Name, Parameter Parameter)> parameters, double learningRate, double weightDecay)
    {
        var decay = parameters.Where(p => Decays(p.Name, p.Parameter)).Select(p => p.Parameter).ToList();
        var noDecay = parameters.Where(p => !Decays(p.Name, p.Parameter)).Select(p => p.Parameter).ToList();
        var groups = new List<AdamW.ParamGroup>();
        if (decay.Count > 0) groups.Add(new AdamW.ParamGroup(decay, new AdamW.Options { LearningRate = learningRate, weight_decay = weightDecay }));
        if (noDecay.Count > 0) groups.Add(new AdamW.ParamGroup(noDecay, new AdamW.Options { LearningRate = learningRate, weight_decay = 0.0 }));
        return optim.AdamW(groups, learningRate);
    }
}
