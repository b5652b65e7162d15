using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>HF <c>BertOnlyMLMHead</c>: the <c>cls.predictions</c> level of the checkpoint keys.</summary>
public sealed class BertOnlyMLMHead : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly BertLMPredictionHead predictions;

    public BertOnlyMLMHead(BertConfig config) : base(nameof(BertOnlyMLMHead))
    {
        predictions = new BertLMPredictionHead(config);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor decoderWeight) => predictions.call(hidden, decoderWeight);
}
