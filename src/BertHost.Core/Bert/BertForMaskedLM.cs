using BertHost.Abstractions;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// A body with the masked-language-model head (HF <c>BertForMaskedLM</c> / the MLM half of <c>BertForPreTraining</c>):
/// parameters are named <c>bert.embeddings...</c>, <c>cls.predictions.transform.dense.weight</c>,
/// <c>cls.predictions.bias</c>; the decoder is the word-embedding matrix (tied), so it has no parameter of its own.
/// </summary>
public sealed class BertForMaskedLM : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    /// <summary>The name transformers gives the tied decoder weight; stored copies must equal the word embeddings.</summary>
    public const string DecoderWeightKey = "cls.predictions.decoder.weight";

    /// <summary>transformers ties <c>cls.predictions.decoder.bias</c> to <c>cls.predictions.bias</c>.</summary>
    public const string DecoderBiasKey = "cls.predictions.decoder.bias";

    public readonly BertModel bert;
    public readonly BertOnlyMLMHead cls;

    public BertForMaskedLM(BertModel body) : base(nameof(BertForMaskedLM))
    {
        bert = body;
        cls = new BertOnlyMLMHead(body.Config);
        RegisterComponents();
    }

    public BertConfig Config => bert.Config;

    /// <summary>The decoder weight: the word embeddings themselves.</summary>
    public Tensor DecoderWeight => bert.embeddings.word_embeddings.weight!;

    /// <summary>A randomly initialised model (body and head) with transformers' initialisation; same seed, same weights.</summary>
    public static BertForMaskedLM CreateRandom(BertConfig config, long seed, bool addPoolingLayer = true)
    {
        var model = new BertForMaskedLM(new BertModel(config, addPoolingLayer));
        BertInitializer.Initialize(model.bert, seed);
        // The head gets its own stream so the body's weights equal those of init-model with the same seed.
        BertInitializer.Initialize(model.cls.predictions, config.InitializerRange, seed + 1);
        return model;
    }

    /// <summary>Logits over the vocabulary for the given hidden states ([..., H] → [..., V]).</summary>
    public Tensor Predict(Tensor hidden) => cls.call(hidden, DecoderWeight);

    /// <summary>Logits at every position: [B,T,V]. For training, prefer <see cref="Predict"/> on the masked positions only.</summary>
    public override Tensor forward(Tensor inputIds, Tensor tokenTypeIds, Tensor attentionMask)
    {
        using var output = bert.Forward(inputIds, tokenTypeIds, attentionMask, outputHiddenStates: false);
        return Predict(output.LastHiddenState);
    }

    /// <summary>Body and head parameters under their Hugging Face names, each tensor once (the decoder is the embedding).</summary>
    public IEnumerable<(string Name, Tensor Tensor)> HuggingFaceTensors()
    {
        foreach (var (name, p) in bert.named_parameters()) yield return ("bert." + name, p);
        foreach (var (name, p) in cls.named_parameters()) yield return ("cls." + name, p);
    }
}
