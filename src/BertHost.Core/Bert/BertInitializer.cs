using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// Fresh weights the way transformers' <c>BertPreTrainedModel._init_weights</c> makes them: linear and embedding
/// weights ~ N(0, initializer_range), biases 0, the padding embedding row 0, LayerNorm weight 1 and bias 0.
/// </summary>
public static class BertInitializer
{
    public static void Initialize(BertModel model, long seed)
    {
        using var generator = new Generator((ulong)seed);
        using var noGrad = no_grad();
        InitializeModules(model, model.Config.InitializerRange, generator);
        model.embeddings.word_embeddings.weight![model.Config.PadTokenId].zero_();
    }

    /// <summary>A fresh masked-language-model head: the transform as above, the vocabulary bias 0 (as transformers does).</summary>
    public static void Initialize(BertLMPredictionHead head, double initializerRange, long seed)
    {
        using var generator = new Generator((ulong)seed);
        using var noGrad = no_grad();
        InitializeModules(head, initializerRange, generator);
        head.bias.zero_();
    }

    private static void InitializeModules(nn.Module root, double std, Generator generator)
    {
        foreach (var (_, module) in root.named_modules())
        {
            switch (module)
            {
                case Linear linear:
                    Normal(linear.weight!, std, generator);
                    if (linear.bias is { } bias) nn.init.zeros_(bias);
                    break;
                case Embedding embedding:
                    Normal(embedding.weight!, std, generator);
                    break;
                case LayerNorm norm:
                    nn.init.ones_(norm.weight!);
                    nn.init.zeros_(norm.bias!);
                    break;
            }
        }
    }

    // Drawn from the explicit generator so the same seed gives the same weights on every run.
    private static void Normal(Tensor weight, double std, Generator generator)
    {
        using var values = randn(weight.shape, dtype: weight.dtype, device: weight.device, generator: generator);
        weight.copy_(values.mul_(std));
    }
}
