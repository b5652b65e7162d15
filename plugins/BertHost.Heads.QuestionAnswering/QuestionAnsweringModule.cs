using BertHost.Abstractions.Heads.Sdk;

namespace BertHost.Heads.QuestionAnswering;

/// <summary>
/// hidden [R,T,H] -> dropout -> qa_outputs: Linear(H, 2) -> logits [R,T,2] (channel 0 = start, 1 = end), as Hugging
/// Face's BertForQuestionAnswering (whose parameter names, <c>qa_outputs.weight</c> [2,H] / <c>qa_outputs.bias</c> [2],
/// these are; that model has no dropout of its own, hence the default 0).
/// </summary>
public sealed class QuestionAnsweringModule(int hiddenSize, double dropoutProb) : LinearHead("qa_outputs", hiddenSize, 2, dropoutProb);
