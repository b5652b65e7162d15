using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>Self-attention followed by its output block (HF <c>BertAttention</c>: keys <c>attention.self.*</c>, <c>attention.output.*</c>).</summary>
public sealed class BertAttention : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly BertSelfAttention @self;
    public readonly BertSelfOutput output;

    public BertAttention(BertConfig config) : base(nameof(BertAttention))
    {
        @self = new BertSelfAttention(config);
        output = new BertSelfOutput(config);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor maskBias)
    {
        using var context = @self.call(hidden, maskBias);
        return output.call(context, hidden);
    }

    /// <summary>The serving pass's step on [N,H] real tokens (see <see cref="TokenPacking"/>).</summary>
    internal Tensor ForwardPacked(Tensor hidden, TokenPacking packing)
    {
        using var context = @self.ForwardPacked(hidden, packing);
        return output.call(context, hidden);
    }
}
