using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>Dense + tanh on the first token (HF <c>BertPooler</c>), trained by next-sentence prediction.</summary>
public sealed class BertPooler : nn.Module<Tensor, Tensor>, IUsesKernels
{
    public readonly Linear dense;

    public BertPooler(BertConfig config) : base(nameof(BertPooler))
    {
        dense = BertLayers.Linear(config.HiddenSize, config.HiddenSize);
        RegisterComponents();
    }

    public BertKernels Kernels { private get; set; } = BertKernels.Default;

    public override Tensor forward(Tensor hidden)
    {
        using var first = hidden.select(1, 0);
        using var projected = dense.Project(first, Kernels);
        return projected.tanh();
    }
}
