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
        using var expanded = intermediate.call(attended);
        return output.call(expanded, attended);
    }
}
