using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// The masked-language-model head (HF <c>BertLMPredictionHead</c>): transform, then a projection onto the vocabulary
/// whose weight IS the word-embedding matrix, plus a per-token bias. The decoder has no weight of its own — it is
/// handed the embedding matrix on every call — so the tie cannot come apart through training, saving or loading,
/// and the optimizer sees the shared matrix once.
/// </summary>
public sealed class BertLMPredictionHead : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly BertPredictionHeadTransform transform;
    public readonly Parameter bias;

    public BertLMPredictionHead(BertConfig config) : base(nameof(BertLMPredictionHead))
    {
        transform = new BertPredictionHeadTransform(config);
        bias = nn.Parameter(zeros(config.VocabSize));
        RegisterComponents();
    }

    /// <param name="hidden">[..., H] hidden states (only the positions to predict, to keep [N, V] small).</param>
    /// <param name="decoderWeight">[V, H] the word embeddings.</param>
    /// <returns>[..., V] logits.</returns>
    public override Tensor forward(Tensor hidden, Tensor decoderWeight)
    {
        using var scope = NewDisposeScope();
        return nn.functional.linear(transform.call(hidden), decoderWeight, bias).MoveToOuterDisposeScope();
    }
}
