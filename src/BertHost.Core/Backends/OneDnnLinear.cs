using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// libtorch's oneDNN linear kernels with weights reordered once into oneDNN's blocked layout (what Inductor's CPU
/// weight prepacking uses, and what ONNX Runtime does with its own GEMM). libtorch's plain Linear goes to MKL's sgemm,
/// which repacks the whole weight matrix on every call: for a single sequence that copy costs ~18 % of a BERT-base
/// pass. The kernels also apply GELU/ReLU in the GEMM's epilogue instead of another pass over the output.
/// <para>
/// TorchSharp has no binding for these operators (<c>mkldnn::_reorder_linear_weight</c>,
/// <c>mkldnn::_linear_pointwise</c>); they are reached through a <see cref="TorchScriptArchive"/>. Inference only (no
/// autograd).
/// </para>
/// </summary>
internal static class OneDnnLinear
{
    /// <summary>Row count the weight layout is chosen for (one 128-token sequence; any row count works).</summary>
    private const long LayoutBatchHint = 128;

    private const string ClassName = "OneDnnLinearOps";

    // TorchScript as torch.jit.save writes it: the importer, not the run-time compiler, resolves `ops.mkldnn`.
    private const string Source = $$"""
        class {{ClassName}}(Module):
          __parameters__ = []
          __buffers__ = []
          training : bool
          def forward(self: __torch__.{{ClassName}}, x: Tensor) -> Tensor:
            return x
          def reorder(self: __torch__.{{ClassName}}, weight: Tensor, rows: int) -> Tensor:
            return ops.mkldnn._reorder_linear_weight(weight, rows)
          def linear(self: __torch__.{{ClassName}}, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
            return ops.mkldnn._linear_pointwise(x, weight, bias, "none", annotate(List[Optional[number]], []), "")
          def linear_gelu(self: __torch__.{{ClassName}}, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
            return ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", annotate(List[Optional[number]], []), "none")
          def linear_gelu_tanh(self: __torch__.{{ClassName}}, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
            return ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", annotate(List[Optional[number]], []), "tanh")
          def bf16_supported(self: __torch__.{{ClassName}}) -> bool:
            return ops.mkldnn._is_mkldnn_bf16_supported()
          def linear_relu(self: __torch__.{{ClassName}}, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
            return ops.mkldnn._linear_pointwise(x, weight, bias, "relu", annotate(List[Optional[number]], []), "")

        """;

    private static readonly Lazy<(jit.ScriptModule? Module, string? Problem)> Ops = new(Load);

    /// <summary>Null when the kernels are usable; otherwise why not (libtorch without oneDNN, or the archive refused).</summary>
    public static string? Unavailable => Ops.Value.Problem;

    /// <summary>
    /// Whether oneDNN runs bfloat16 on this CPU (AVX-512 or newer; libtorch's own test for sending bfloat16 matrix
    /// products to oneDNN). Elsewhere libtorch computes bfloat16 products without oneDNN, and packing would not pay.
    /// </summary>
    public static bool SupportsBFloat16 => Unavailable is null && BFloat16.Value;

    private static readonly Lazy<bool> BFloat16 = new(() =>
    {
        using var supported = (Scalar)Module.invoke("bf16_supported")!;
        return supported.ToBoolean();
    });

    /// <summary>The weight [out, in] in oneDNN's layout (an opaque mkldnn tensor owned by the caller).</summary>
    public static Tensor Reorder(Tensor weight)
    {
        using var noGrad = no_grad();
        using var contiguous = weight.contiguous();
        return (Tensor)Module.invoke("reorder", contiguous, LayoutBatchHint);
    }

    /// <summary>
    /// x [N, in] · packedᵀ + bias, then <paramref name="epilogue"/> in the same kernel: null, or one of the
    /// <see cref="Epilogues"/> (TorchSharp passes no strings to TorchScript, so each has its own method).
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor packed, Tensor bias, string? epilogue = null)
        => (Tensor)Module.invoke(epilogue is null ? "linear" : "linear_" + epilogue, x, packed, bias);

    /// <summary>Activations the kernel can apply itself.</summary>
    public static class Epilogues
    {
        public const string Gelu = "gelu";
        public const string GeluTanh = "gelu_tanh";
        public const string Relu = "relu";
    }

    private static jit.ScriptModule Module =>
        Ops.Value.Module ?? throw new InvalidOperationException("oneDNN linear kernels are unavailable: " + Ops.Value.Problem);

    private static (jit.ScriptModule?, string?) Load()
    {
        try
        {
            var module = jit.load(TorchScriptArchive.Write(ClassName, Source));
            // One call on the real operators: a libtorch built without them fails here, not in the middle of a request.
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var w = ones(3, 2);
            var packed = (Tensor)module.invoke("reorder", w, LayoutBatchHint);
            var y = (Tensor)module.invoke("linear", ones(1, 2), packed, zeros(3));
            if (!y.allclose(full(1, 3, 2f))) return (null, "oneDNN linear returned a wrong result in its self-test");
            return (module, null);
        }
        catch (Exception e)
        {
            return (null, e.Message.Split('\n')[0]);
        }
    }
}
