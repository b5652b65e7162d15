using BertHost.Abstractions.Heads;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Heads.MultipleChoice;

/// <summary>
/// pooled [R,H] (one row per choice) -> dropout -> classifier: Linear(H, 1) -> one score per row [R]. Parameter names
/// are <c>classifier.weight</c> [1,H] / <c>classifier.bias</c> [1], as Hugging Face's BertForMultipleChoice, so an
/// import is a plain name match. (BertForMultipleChoice reshapes the [B*C,1] scores to [B,C]; here items may have
/// different numbers of choices, so the scores stay one per row and <c>HeadBatch.RowStarts</c> groups them.) With
/// attention pooling also <c>attention_pooling.score.weight</c> [1,H].
/// </summary>
public sealed class MultipleChoiceModule : nn.Module<Tensor, Tensor>
{
    private readonly Dropout dropout;
    private readonly Linear classifier;
    private readonly AttentionPooling? attention_pooling;

    public MultipleChoiceModule(int hiddenSize, double dropoutProb, bool attentionPooling = false) : base(nameof(MultipleChoiceModule))
    {
        dropout = nn.Dropout(dropoutProb);
        attention_pooling = attentionPooling ? new AttentionPooling(hiddenSize) : null;
        classifier = nn.Linear(hiddenSize, 1);
        RegisterComponents();
    }

    /// <summary>The attention-pooled [R,H] vectors of [R,T,H] token states (pooling: attention only).</summary>
    public Tensor AttentionPool(Tensor hidden, Tensor attentionMask) =>
        (attention_pooling ?? throw new InvalidOperationException("this head does not pool with attention")).call(hidden, attentionMask);

    public override Tensor forward(Tensor pooled)
    {
        using var scope = NewDisposeScope();
        return classifier.call(dropout.call(pooled)).squeeze(-1).MoveToOuterDisposeScope();
    }

    /// <summary>classifier.weight ~ N(0, <paramref name="std"/>) from a generator seeded with <paramref name="seed"/>, bias 0.</summary>
    public void InitializeFresh(double std, long seed)
    {
        using var generator = new Generator((ulong)seed);
        using var noGrad = no_grad();
        using var values = randn(classifier.weight!.shape, dtype: ScalarType.Float32, generator: generator);
        classifier.weight!.copy_(values.mul_(std));
        nn.init.zeros_(classifier.bias!);
    }
}
