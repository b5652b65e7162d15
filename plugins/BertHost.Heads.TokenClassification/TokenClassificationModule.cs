using BertHost.Abstractions.Heads.Sdk;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Heads.TokenClassification;

/// <summary>
/// features [N,T,F] -> dropout -> (hidden: Linear -> activation -> dropout)? -> classifier: Linear -> logits [N,T,labels].
/// Parameter names are <c>classifier.weight</c>/<c>classifier.bias</c> (as Hugging Face's BertForTokenClassification,
/// so an import is a plain name match) and <c>hidden.weight</c>/<c>hidden.bias</c>.
/// </summary>
public sealed class TokenClassificationModule : nn.Module<Tensor, Tensor>
{
    private readonly Dropout dropout;
    private readonly Linear? hidden;
    private readonly Linear classifier;
    private readonly HiddenActivation _activation;

    public TokenClassificationModule(int inputSize, int? hiddenSize, int labelCount, double dropoutProb, HiddenActivation activation)
        : base(nameof(TokenClassificationModule))
    {
        dropout = nn.Dropout(dropoutProb);
        if (hiddenSize is { } h) hidden = nn.Linear(inputSize, h);
        classifier = nn.Linear(hiddenSize ?? inputSize, labelCount);
        _activation = activation;
        RegisterComponents();
    }

    public override Tensor forward(Tensor features)
    {
        using var scope = NewDisposeScope();
        var x = dropout.call(features);
        if (hidden is not null)
        {
            x = hidden.call(x);
            x = _activation switch
            {
                HiddenActivation.Relu => nn.functional.relu(x),
                HiddenActivation.Tanh => x.tanh(),
                _ => nn.functional.gelu(x),
            };
            x = dropout.call(x);
        }
        return classifier.call(x).MoveToOuterDisposeScope();
    }

    /// <summary>Weights ~ N(0, <paramref name="std"/>) drawn from a generator seeded with <paramref name="seed"/>, biases 0 (BERT's _init_weights).</summary>
    public void InitializeFresh(double std, long seed) => HeadInit.Normal(std, seed, hidden is null ? [classifier] : [hidden, classifier]);
}
