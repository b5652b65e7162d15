using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>The feed-forward expansion and its activation (HF <c>BertIntermediate</c>).</summary>
public sealed class BertIntermediate : nn.Module<Tensor, Tensor>, IUsesKernels
{
    public readonly Linear dense;
    private readonly Activation _activation;

    public BertIntermediate(BertConfig config) : base(nameof(BertIntermediate))
    {
        dense = BertLayers.Linear(config.HiddenSize, config.IntermediateSize);
        _activation = Activations.Get(config.HiddenAct);
        RegisterComponents();
    }

    public BertKernels Kernels { private get; set; } = BertKernels.Default;

    public override Tensor forward(Tensor hidden) => dense.Project(hidden, Kernels, _activation);
}
