using BertHost.Abstractions.Heads.Sdk;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Company.Heads.TextScore;

/// <summary>
/// pooled [R,H] -> dropout -> Linear(H, 1) -> one score per row [R]. The layer is named <c>classifier</c> like that of a
/// Hugging Face BertForSequenceClassification with one label (a regression model), so such a folder imports by name.
/// </summary>
public sealed class TextScoreModule : nn.Module<Tensor, Tensor>
{
    private readonly Dropout dropout;
    private readonly Linear classifier;

    public TextScoreModule(int hiddenSize, double dropoutProbability) : base(nameof(TextScoreModule))
    {
        dropout = nn.Dropout(dropoutProbability);
        classifier = nn.Linear(hiddenSize, 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pooled)
    {
        using var scope = NewDisposeScope();
        var scores = classifier.call(dropout.call(pooled));
        return scores.squeeze(-1).MoveToOuterDisposeScope();
    }

    /// <summary>BERT's initialization, from the deployment's seed (the same fresh head every start).</summary>
    public void InitializeFresh(double std, long seed) => HeadInit.Normal(std, seed, classifier);
}
