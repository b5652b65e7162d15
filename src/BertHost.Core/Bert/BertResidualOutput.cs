using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// dense → dropout → LayerNorm(x + residual): the block transformers repeats as <c>BertSelfOutput</c> (after
/// attention) and <c>BertOutput</c> (after the feed-forward expansion). Both keep their HF names as subclasses so
/// checkpoint keys match; only the input width differs.
/// </summary>
public abstract class BertResidualOutput : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly Linear dense;
    public readonly LayerNorm LayerNorm;
    public readonly Dropout dropout;

    protected BertResidualOutput(string name, BertConfig config, int inputSize) : base(name)
    {
        dense = nn.Linear(inputSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        dropout = nn.Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    /// <param name="hidden">The block's input to project.</param>
    /// <param name="residual">The [B,T,H] tensor added back before normalising.</param>
    public override Tensor forward(Tensor hidden, Tensor residual)
    {
        using var scope = NewDisposeScope();
        return LayerNorm.call(dropout.call(dense.Project(hidden)).add_(residual)).MoveToOuterDisposeScope();
    }
}
