using BertHost.Abstractions.Text;
using BertHost.Core.Bert;
using BertHost.Core.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Pretraining;

/// <summary>One candidate for a [MASK]: as transformers' fill-mask pipeline reports it.</summary>
public sealed record FillMaskCandidate(double Score, int Token, string TokenStr, string Sequence);

/// <summary>
/// transformers' fill-mask pipeline: the text is encoded with [CLS]/[SEP], the model's logits at each [MASK] are
/// turned into probabilities (softmax over the vocabulary), and the top k tokens are returned with the text
/// decoded with that token in place (with several masks the others stay, and special tokens are kept in the sequence, as the pipeline does).
/// </summary>
public sealed class FillMask(BertForMaskedLM model, BertTextTokenizer tokenizer, Device device)
{
    /// <summary>One list of candidates per [MASK] in <paramref name="text"/>, in text order.</summary>
    /// <exception cref="ArgumentException">The text has no [MASK] token.</exception>
    public IReadOnlyList<IReadOnlyList<FillMaskCandidate>> Predict(string text, int topK = 5)
    {
        if (topK < 1) throw new ArgumentOutOfRangeException(nameof(topK), topK, "top_k must be at least 1");
        var maxLength = Math.Min(model.Config.MaxPositionEmbeddings, tokenizer.ModelMaxLength);
        var encoded = tokenizer.Encode(text, null, new EncodeOptions { MaxLength = maxLength })[0];
        var ids = encoded.InputIds;
        var masks = Enumerable.Range(0, ids.Length).Where(i => ids[i] == tokenizer.MaskTokenId).ToArray();
        if (masks.Length == 0) throw new ArgumentException($"the text has no {tokenizer.Settings.MaskToken} token");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        model.eval();
        var input = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length], ScalarType.Int64, device);
        using var output = model.bert.Forward(input, zeros_like(input), ones_like(input), outputHiddenStates: false);
        var positions = tensor(masks.Select(m => (long)m).ToArray(), ScalarType.Int64, device);
        var hidden = output.LastHiddenState.squeeze(0).index_select(0, positions);
        // Probabilities over the tokenizer's vocabulary only (a padded embedding table may be larger).
        var probabilities = model.Predict(hidden).narrow(1, 0, tokenizer.VocabSize).to(ScalarType.Float64).softmax(-1).cpu();
        var k = Math.Min(topK, tokenizer.VocabSize);
        var (values, indices) = probabilities.topk(k, dim: -1);

        var result = new List<IReadOnlyList<FillMaskCandidate>>();
        for (var m = 0; m < masks.Length; m++)
        {
            var candidates = new List<FillMaskCandidate>(k);
            for (var j = 0; j < k; j++)
            {
                var token = (int)indices[m, j].item<long>();
                var filled = (int[])ids.Clone();
                filled[masks[m]] = token;
                candidates.Add(new FillMaskCandidate(values[m, j].item<double>(), token, tokenizer.Decode([token]),
                    tokenizer.Decode(filled, skipSpecialTokens: masks.Length == 1)));
            }
            result.Add(candidates);
        }
        return result;
    }
}
