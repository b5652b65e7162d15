using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// Attention pooling (<c>pooling: attention</c> of the classification and multiple-choice heads): a learned scoring
/// vector w [H] gives each token a score s_t = w · h_t; the scores are softmaxed over the real (unmasked) tokens and
/// the sentence vector is Σ_t softmax(s)_t h_t. Its one parameter is <c>score.weight</c> [1,H] (no bias: a constant
/// added to every score cancels in the softmax). It starts at zero, so a fresh head pools exactly as <c>mean</c> does and
/// learns from there which tokens to weigh — on a frozen body that is the part of the sentence the body cannot point
/// the head at.
/// </summary>
public sealed class AttentionPooling : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear score;

    public AttentionPooling(int hiddenSize) : base(nameof(AttentionPooling))
    {
        score = nn.Linear(hiddenSize, 1, hasBias: false);
        RegisterComponents();
        using var noGrad = no_grad();
        nn.init.zeros_(score.weight!);
    }

    /// <summary>[B,T,H] token states and a [B,T] attention mask (1 = real token) -> [B,H].</summary>
    public override Tensor forward(Tensor hidden, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var scores = score.call(hidden).squeeze(-1);   // [B,T]
        return Pool(hidden, attentionMask, scores).MoveToOuterDisposeScope();
    }

    /// <summary>The weighted sum of <paramref name="hidden"/> under the masked softmax of <paramref name="scores"/> [B,T].</summary>
    public static Tensor Pool(Tensor hidden, Tensor attentionMask, Tensor scores)
    {
        using var scope = NewDisposeScope();
        // -inf on padding: those tokens get weight exactly 0 (every row has at least its [CLS] token unmasked).
        var masked = scores.to(ScalarType.Float32).masked_fill(attentionMask.eq(0), float.NegativeInfinity);
        var weights = masked.softmax(1).to(hidden.dtype);   // [B,T]
        return weights.unsqueeze(1).bmm(hidden).squeeze(1).MoveToOuterDisposeScope();
    }
}
