using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>Word + absolute position + token type embeddings, then LayerNorm and dropout (HF <c>BertEmbeddings</c>).</summary>
public sealed class BertEmbeddings : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly Embedding word_embeddings;
    public readonly Embedding position_embeddings;
    public readonly Embedding token_type_embeddings;
    public readonly LayerNorm LayerNorm;
    public readonly Dropout dropout;

    public BertEmbeddings(BertConfig config) : base(nameof(BertEmbeddings))
    {
        word_embeddings = BertLayers.Embedding(config.VocabSize, config.HiddenSize, paddingIdx: config.PadTokenId);
        position_embeddings = BertLayers.Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        token_type_embeddings = BertLayers.Embedding(config.TypeVocabSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        dropout = nn.Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    /// <param name="inputIds">[B,T] int64 token ids.</param>
    /// <param name="tokenTypeIds">[B,T] int64 segment ids.</param>
    public override Tensor forward(Tensor inputIds, Tensor tokenTypeIds)
    {
        using var scope = NewDisposeScope();
        var length = inputIds.shape[1];
        using var positions = arange(length, dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        var x = word_embeddings.call(inputIds)
            .add_(token_type_embeddings.call(tokenTypeIds))
            .add_(position_embeddings.call(positions));
        return dropout.call(LayerNorm.call(x)).MoveToOuterDisposeScope();
    }
}
