using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>One post-LayerNorm transformer block (HF <c>BertLayer</c>).</summary>
public sealed class BertLayer : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly BertAttention attention;
    public readonly BertIntermediate intermediate;
    public readonly BertOutput output;

    public BertLayer(BertConfig config) : base(nameof(BertLayer))
    {
        attention = new BertAttention(config);
        intermediate = new BertIntermediate(config);
        output = new BertOutput(config);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor maskBias)
    {
        using var attended = attention.call(hidden, maskBias);
        return FeedForward(attended);
    }

    /// <summary>
    /// The serving pass's step: the same block on [N,H] real tokens only (see <see cref="TokenPacking"/>); every Linear,
    /// LayerNorm and GELU skips the padding, attention keeps each sequence's tokens to themselves.
    /// </summary>
    internal Tensor ForwardPacked(Tensor hidden, TokenPacking packing)
    {
        using var attended = attention.ForwardPacked(hidden, packing);
        return FeedForward(attended);
    }

    private Tensor FeedForward(Tensor attended)
    {
        using var expanded = intermediate.call(attended);
        return output.call(expanded, attended);
    }
}
