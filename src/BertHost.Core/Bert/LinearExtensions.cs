using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

internal static class LinearExtensions
{
    /// <summary>
    /// <paramref name="linear"/> over the last dimension of <paramref name="x"/>, computed on a 2-D view. libtorch's
    /// C++ <c>functional::linear</c> (what TorchSharp's Linear runs) fuses the bias into the GEMM (addmm) only for 2-D
    /// inputs; a [B,T,H] input gets a matmul and then a separate pass adding the bias. Measured on an H100 in bf16,
    /// bert-base at 1024×128 went from 11.7k to 17.5k sequences/s with the 2-D form.
    /// </summary>
    public static Tensor Project(this Linear linear, Tensor x)
    {
        if (x.dim() == 2) return linear.call(x);
        var shape = x.shape;
        using var flat = x.reshape(-1, shape[^1]);
        using var projected = linear.call(flat);
        shape[^1] = projected.shape[1];
        return projected.view(shape);
    }
}
