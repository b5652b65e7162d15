using BertHost.Abstractions.Heads.Sdk;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Heads.QuestionAnswering;

/// <summary>
/// hidden [R,T,H] -> dropout -> qa_outputs: Linear(H, 2) -> logits [R,T,2] (channel 0 = start, 1 = end), as Hugging
/// Face's BertForQuestionAnswering (whose parameter names, <c>qa_outputs.weight</c> [2,H] / <c>qa_outputs.bias</c> [2],
/// these are; that model has no dropout of its own, hence the default 0).
/// </summary>
public sealed class QuestionAnsweringModule : nn.Module<Tensor, Tensor>
{
    private readonly Dropout dropout;
    private readonly Linear qa_outputs;

    public QuestionAnsweringModule(int hiddenSize, double dropoutProb) : base(nameof(QuestionAnsweringModule))
    {
        dropout = nn.Dropout(dropoutProb);
        qa_outputs = nn.Linear(hiddenSize, 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return qa_outputs.call(dropout.call(hidden)).MoveToOuterDisposeScope();
    }

    /// <summary>Weight ~ N(0, <paramref name="std"/>) from a generator seeded with <paramref name="seed"/>, bias 0.</summary>
    public void InitializeFresh(double std, long seed) => HeadInit.Normal(std, seed, qa_outputs);
}
