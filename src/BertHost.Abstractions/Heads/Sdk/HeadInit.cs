using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads.Sdk;

/// <summary>Fresh weights for a head's layers, reproducible from the deployment's seed.</summary>
public static class HeadInit
{
    /// <summary>
    /// BERT's <c>_init_weights</c> for Linear layers: each weight ~ N(0, <paramref name="std"/>) (the body's
    /// initializer_range), each bias 0; the layers draw in order from one generator seeded with <paramref name="seed"/>,
    /// so a fresh head is the same on every start and machine.
    /// </summary>
    public static void Normal(double std, long seed, params Linear[] layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        using var generator = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var linear in layers)
        {
            using var values = randn(linear.weight!.shape, dtype: ScalarType.Float32, generator: generator);
            linear.weight!.copy_(values.mul_(std));
            if (linear.bias is { } bias) nn.init.zeros_(bias);
        }
    }
}
