using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// dense → dropout → LayerNorm(x + residual): the block transformers repeats as <c>BertSelfOutput</c> (after
/// attention) and <c>BertOutput</c> (after the feed-forward expansion). Both keep their HF names as subclasses so
/// checkpoint keys match; only the input width differs.
/// </summary>
public abstract class BertResidualOutput : nn.Module<Tensor, Tensor, Tensor>, IUsesKernels
{
    public readonly Linear dense;
    public readonly LayerNorm LayerNorm;
    public readonly Dropout dropout;

    protected BertResidualOutput(string name, BertConfig config, int inputSize) : base(name)
    {
        dense = BertLayers.Linear(inputSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        dropout = nn.Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    public BertKernels Kernels { private get; set; } = BertKernels.Default;

    /// <param name="hidden">The block's input to project ([B,T,in], or [N,in] rows in the serving pass).</param>
    /// <param name="residual">The tensor of the output's shape added back before normalising.</param>
    public override Tensor forward(Tensor hidden, Tensor residual)
    {
        // Dropout is the identity outside training: the int8 path then finishes each row of the projection in one pass.
        if (!training && dense.ProjectResidualNorm(hidden, residual, LayerNorm, Kernels) is { } fused) return fused;
        using var scope = NewDisposeScope();
        return LayerNorm.call(dropout.call(dense.Project(hidden, Kernels)).add_(residual)).MoveToOuterDisposeScope();
    }
}
