using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads.Sdk;

/// <summary>
/// The simplest head module: dropout, then one Linear layer (features [..., in] -> [..., out]). The Linear layer is
/// registered under <c>linearName</c> so that its parameters carry the names of the Hugging Face model it stands for
/// (<c>classifier.weight</c>, <c>qa_outputs.bias</c>, ...) and such a model's task tensors load by name.
/// </summary>
public class LinearHead : nn.Module<Tensor, Tensor>
{
    private readonly Dropout _dropout;
    private readonly Linear _linear;

    /// <param name="linearName">The Linear layer's name in the state dict (e.g. <c>classifier</c>).</param>
    public LinearHead(string linearName, int inputSize, int outputSize, double dropoutProbability) : base(nameof(LinearHead))
    {
        ArgumentException.ThrowIfNullOrEmpty(linearName);
        _dropout = nn.Dropout(dropoutProbability);
        _linear = nn.Linear(inputSize, outputSize);
        register_module("dropout", _dropout);
        register_module(linearName, _linear);
    }

    public override Tensor forward(Tensor features)
    {
        using var scope = NewDisposeScope();
        return _linear.call(_dropout.call(features)).MoveToOuterDisposeScope();
    }

    /// <summary>BERT's initialization of the Linear layer from the deployment's seed (<see cref="HeadInit.Normal"/>).</summary>
    public void InitializeFresh(double std, long seed) => HeadInit.Normal(std, seed, _linear);
}
