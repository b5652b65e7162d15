using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>The activations transformers' <c>ACT2FN</c> names that BERT checkpoints use.</summary>
internal static class Activations
{
    public static Func<Tensor, Tensor> Get(string name) => name switch
    {
        // "gelu" in transformers is the exact erf form, which is libtorch's default.
        "gelu" => x => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" => GeluTanh,
        "relu" => x => nn.functional.relu(x),
        "silu" or "swish" => x => nn.functional.silu(x),
        _ => throw new BertConfigException($"hidden_act '{name}' is not supported"),
    };

    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    private static Tensor GeluTanh(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inner = x.pow(3).mul_(0.044715).add_(x).mul_(Math.Sqrt(2.0 / Math.PI));
        return inner.tanh_().add_(1.0).mul_(x).mul_(0.5).MoveToOuterDisposeScope();
    }
}
