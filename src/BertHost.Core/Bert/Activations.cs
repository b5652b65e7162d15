using static TorchSharp.torch;
using BertHost.Core.Backends;

namespace BertHost.Core.Bert;

/// <summary>
/// An activation transformers' <c>ACT2FN</c> names; <see cref="OneDnnEpilogue"/> is the same function as oneDNN's
/// linear kernel applies it in its epilogue (null when it has none).
/// </summary>
internal sealed record Activation(string Name, Func<Tensor, Tensor> Apply, string? OneDnnEpilogue);

/// <summary>The activations BERT checkpoints use.</summary>
internal static class Activations
{
    public static Activation Get(string name) => name switch
    {
        // "gelu" in transformers is the exact erf form, which is libtorch's default.
        "gelu" => new(name, x => nn.functional.gelu(x), OneDnnLinear.Epilogues.Gelu),
        "gelu_new" or "gelu_pytorch_tanh" => new(name, GeluTanh, OneDnnLinear.Epilogues.GeluTanh),
        "relu" => new(name, x => nn.functional.relu(x), OneDnnLinear.Epilogues.Relu),
        "silu" or "swish" => new(name, x => nn.functional.silu(x), null),
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
