using BertHost.Abstractions.Heads;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Heads.Classification;

/// <summary>
/// pooled [N,H] -> dropout -> (hidden.i: Linear -> activation -> dropout)* -> classifier: Linear -> logits [N,labels].
/// Parameter names are <c>classifier.weight</c>/<c>classifier.bias</c> (as Hugging Face's BertForSequenceClassification,
/// so an import is a plain name match) and <c>hidden.{i}.weight</c>/<c>hidden.{i}.bias</c>; with attention pooling
/// also <c>attention_pooling.score.weight</c> [1,H].
/// </summary>
public sealed class ClassificationModule : nn.Module<Tensor, Tensor>
{
    private readonly Dropout dropout;
    private readonly ModuleList<Linear> hidden;
    private readonly Linear classifier;
    private readonly AttentionPooling? attention_pooling;
    private readonly HiddenActivation _activation;

    public ClassificationModule(int inputSize, IReadOnlyList<int> hiddenLayers, int labelCount, double dropoutProb,
        HiddenActivation activation, bool attentionPooling = false) : base(nameof(ClassificationModule))
    {
        dropout = nn.Dropout(dropoutProb);
        attention_pooling = attentionPooling ? new AttentionPooling(inputSize) : null;
        hidden = new ModuleList<Linear>();
        var size = inputSize;
        foreach (var h in hiddenLayers)
        {
            hidden.Add(nn.Linear(size, h));
            size = h;
        }
        classifier = nn.Linear(size, labelCount);
        _activation = activation;
        RegisterComponents();
    }

    /// <summary>The attention-pooled [N,H] sentence vectors of [N,T,H] token states (pooling: attention only).</summary>
    public Tensor AttentionPool(Tensor hidden, Tensor attentionMask) =>
        (attention_pooling ?? throw new InvalidOperationException("this head does not pool with attention")).call(hidden, attentionMask);

    public override Tensor forward(Tensor pooled)
    {
        using var scope = NewDisposeScope();
        var x = dropout.call(pooled);
        foreach (var layer in hidden)
        {
            x = layer.call(x);
            x = _activation switch
            {
                HiddenActivation.Gelu => nn.functional.gelu(x),
                HiddenActivation.Relu => nn.functional.relu(x),
                _ => x.tanh(),
            };
            x = dropout.call(x);
        }
        return classifier.call(x).MoveToOuterDisposeScope();
    }

    /// <summary>Weights ~ N(0, <paramref name="std"/>) drawn from a generator seeded with <paramref name="seed"/>, biases 0.</summary>
    public void InitializeFresh(double std, long seed)
    {
        using var generator = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var linear in hidden.Append(classifier))
        {
            using var values = randn(linear.weight!.shape, dtype: ScalarType.Float32, generator: generator);
            linear.weight!.copy_(values.mul_(std));
            nn.init.zeros_(linear.bias!);
        }
    }
}
