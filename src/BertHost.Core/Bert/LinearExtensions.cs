using BertHost.Core.Backends;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

internal static class LinearExtensions
{
    /// <summary>
    /// <paramref name="linear"/> over the last dimension of <paramref name="x"/>, computed on a 2-D view, followed by
    /// <paramref name="activation"/>. libtorch's C++ <c>functional::linear</c> (what TorchSharp's Linear runs) fuses the
    /// bias into the GEMM (addmm) only for 2-D inputs; a [B,T,H] input gets a matmul and then a separate pass adding the
    /// bias. Measured on an H100 in bf16, bert-base at 1024×128 went from 11.7k to 17.5k sequences/s with the 2-D form.
    /// Inference passes with int8 weights (<see cref="BertKernels.Quantized"/>) run fbgemm's dynamic int8 kernel, and
    /// those with prepacked weights (<see cref="BertKernels.Packed"/>) oneDNN's, with a GELU or ReLU inside the GEMM.
    /// With <see cref="ProjectionUpdates"/> open that adapt this Linear (LoRA), the base product is computed the same way (the activation
    /// then runs after the adapters' updates, not fused) and the updates are added to their rows.
    /// </summary>
    public static Tensor Project(this Linear linear, Tensor x, BertKernels kernels, Activation? activation = null)
    {
        var shape = x.shape;
        using var flat = x.dim() == 2 ? x.alias() : x.reshape(-1, shape[^1]);
        var lora = ProjectionUpdates.Current is { } pass && pass.Adapts(linear) ? pass : null;
        var finalActivation = activation;
        if (lora is not null) activation = null;
        Tensor projected;
        if (activation?.Name == "gelu" && kernels.Quantized?.RunWithEpilogue(linear, flat, GeluRows.Instance) is { } finished)
        {
            projected = finished; // the exact GELU applied in the int8 projection's row pass
        }
        else if (kernels.Quantized?.For(linear) is { } int8)
        {
            projected = Activate(int8(flat), activation);
        }
        else if (kernels.Packed?.For(linear, flat.shape[0]) is { } packed)
        {
            projected = activation?.OneDnnEpilogue is { } fused
                ? packed.Run(flat, fused)
                : Activate(packed.Run(flat, null), activation);
        }
        else
        {
            projected = Activate(linear.call(flat), activation);
        }
        if (lora is not null) projected = Activate(lora.AddUpdates(linear, flat, projected), finalActivation);
        return Unflattened(projected, shape);
    }

    /// <summary>
    /// Linears that read the same input, computed as one stacked GEMM (<paramref name="stacked"/>: [rows, Σ outputs],
    /// see <see cref="Backends.QuantizedWeights.ForFused"/>): each Linear's output is a view of its columns (rows strided,
    /// as the attention core reads them), with the updates of open <see cref="ProjectionUpdates"/> added to it.
    /// </summary>
    public static Tensor[] ProjectStacked(this IReadOnlyList<Linear> linears, Tensor x, Func<Tensor, Tensor> stacked)
    {
        var shape = x.shape;
        using var flat = x.dim() == 2 ? x.alias() : x.reshape(-1, shape[^1]);
        using var all = stacked(flat);
        var lora = ProjectionUpdates.Current;
        var outputs = new Tensor[linears.Count];
        var first = 0L;
        for (var i = 0; i < linears.Count; i++)
        {
            var projected = all.narrow(1, first, linears[i].out_features);
            first += linears[i].out_features;
            if (lora is not null && lora.Adapts(linears[i])) projected = lora.AddUpdates(linears[i], flat, projected);
            outputs[i] = Unflattened(projected, (long[])shape.Clone());
        }
        return outputs;
    }

    /// <summary>
    /// LayerNorm(<paramref name="linear"/>(x) + <paramref name="residual"/>) in the int8 projection's row pass (see
    /// <see cref="ResidualLayerNormRows"/>), when this pass runs <paramref name="linear"/> in int8 with checked row
    /// epilogues and no open <see cref="ProjectionUpdates"/> adapt it; null otherwise (the caller runs the operators).
    /// </summary>
    public static unsafe Tensor? ProjectResidualNorm(this Linear linear, Tensor x, Tensor residual, LayerNorm norm, BertKernels kernels)
    {
        if (kernels.Quantized is not { RowEpilogues: true } int8 || ProjectionUpdates.Current is { } pass && pass.Adapts(linear)) return null;
        var shape = x.shape;
        var width = (int)linear.out_features;
        using var flat = x.dim() == 2 ? x.alias() : x.reshape(-1, shape[^1]);
        using var residualView = residual.reshape(-1, width);
        using var residualRows = residualView.contiguous();
        using var weight = norm.weight!.contiguous();
        using var bias = norm.bias!.contiguous();
        var epilogue = new ResidualLayerNormRows(TensorMemory.Floats(residualRows), TensorMemory.Floats(weight), TensorMemory.Floats(bias),
            width, (float)norm.eps);
        return int8.RunWithEpilogue(linear, flat, epilogue) is { } projected ? Unflattened(projected, shape) : null;
    }

    /// <summary>A [rows, outputs] projection back in the leading shape of its input (<paramref name="shape"/>).</summary>
    private static Tensor Unflattened(Tensor projected, long[] shape)
    {
        if (shape.Length == 2) return projected;
        using (projected)
        {
            shape[^1] = projected.shape[1];
            return projected.view(shape);
        }
    }

    private static Tensor Activate(Tensor projected, Activation? activation)
    {
        if (activation is null) return projected;
        using (projected) return activation.Apply(projected);
    }
}
