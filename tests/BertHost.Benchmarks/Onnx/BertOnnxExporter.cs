using BertHost.Core.Bert;
using static BertHost.Benchmarks.Onnx.OnnxProto;
using static TorchSharp.torch;

namespace BertHost.Benchmarks.Onnx;

/// <summary>
/// Writes a loaded <see cref="BertModel"/> as an ONNX graph (opset 17) with the weights it holds, node for node what a
/// torch.onnx export of Hugging Face <c>BertModel</c> contains: Gather embeddings + LayerNormalization; per layer
/// MatMul/Add projections, heads split by Reshape/Transpose, scores divided by √d, additive mask, Softmax, erf GELU,
/// residual LayerNormalization; Gemm + Tanh pooler. Inputs <c>input_ids</c>, <c>attention_mask</c>,
/// <c>token_type_ids</c> ([batch, sequence] int64); outputs <c>last_hidden_state</c> and, with a pooler,
/// <c>pooler_output</c>. ONNX Runtime's graph optimiser then fuses what it recognises (BiasGelu, FusedMatMul...).
/// </summary>
public static class BertOnnxExporter
{
    public const int Opset = 17;

    /// <param name="int8">Write every Linear as ONNX Runtime's dynamic quantization writes it
    /// (<c>quantize_dynamic(per_channel=True)</c>): DynamicQuantizeLinear on the activations, MatMulInteger with int8
    /// weights quantized per output channel (symmetric, scale = max |row| / 127, as the host quantizes them), Cast,
    /// Mul by the two scales, Add the bias. ORT fuses the pattern into its DynamicQuantizeMatMul kernel.</param>
    public static byte[] Export(BertModel model, bool int8 = false)
    {
        var g = new GraphBuilder(int8);
        var c = model.Config;
        var e = model.embeddings;

        // Embeddings: word + token type + positions [0, T).
        g.Init("word_embeddings", e.word_embeddings.weight!);
        g.Init("token_type_embeddings", e.token_type_embeddings.weight!);
        g.Init("position_embeddings", e.position_embeddings.weight!);
        g.Const("zero_1d", [0L]);
        g.Const("axis0_1d", [0L]);
        g.Const("axes_1_2", [1L, 2L]);
        g.Add("Shape", ["input_ids"], ["seq_len"], IntAttribute("start", 1), IntAttribute("end", 2));
        g.Add("Slice", ["position_embeddings", "zero_1d", "seq_len", "axis0_1d"], ["positions"]);
        g.Add("Gather", ["word_embeddings", "input_ids"], ["word"]);
        g.Add("Gather", ["token_type_embeddings", "token_type_ids"], ["token_type"]);
        g.Add("Add", ["word", "token_type"], ["emb_sum0"]);
        g.Add("Add", ["emb_sum0", "positions"], ["emb_sum"]);
        var hidden = g.LayerNorm("embeddings.LayerNorm", "emb_sum", e.LayerNorm.weight!, e.LayerNorm.bias!, c.LayerNormEps);

        // Additive mask: (1 - mask) * float.MinValue, [B,1,1,T] — what BertModel.Forward builds.
        g.ConstFloat("one", 1f);
        g.ConstFloat("mask_fill", float.MinValue);
        g.Add("Cast", ["attention_mask"], ["mask_f"], IntAttribute("to", (long)DataType.Float));
        g.Add("Sub", ["one", "mask_f"], ["mask_inv"]);
        g.Add("Mul", ["mask_inv", "mask_fill"], ["mask_bias2d"]);
        g.Add("Unsqueeze", ["mask_bias2d", "axes_1_2"], ["mask_bias"]);

        g.Const("heads_shape", [0L, 0L, c.NumAttentionHeads, c.HeadDim]);
        g.Const("merge_shape", [0L, 0L, c.HiddenSize]);
        g.ConstFloat("sqrt_d", (float)Math.Sqrt(c.HeadDim));
        g.ConstFloat("sqrt_2", (float)Math.Sqrt(2.0));
        g.ConstFloat("half", 0.5f);

        for (var i = 0; i < c.NumHiddenLayers; i++)
            hidden = Layer(g, $"layer{i}", model.encoder.layer[i], hidden, c.LayerNormEps);

        g.Output("last_hidden_state", hidden, DataType.Float, "batch", "sequence", c.HiddenSize);
        g.Add("Identity", [hidden], ["last_hidden_state"]);
        if (model.pooler is { } pooler)
        {
            g.Const("first_index", [0L], scalar: true);
            g.Add("Gather", [hidden, "first_index"], ["cls"], IntAttribute("axis", 1));
            g.Init("pooler.dense.weight", pooler.dense.weight!);
            g.Init("pooler.dense.bias", pooler.dense.bias!);
            g.Add("Gemm", ["cls", "pooler.dense.weight", "pooler.dense.bias"], ["pooled_linear"], IntAttribute("transB", 1));
            g.Add("Tanh", ["pooled_linear"], ["pooler_output"]);
            g.Output("pooler_output", "pooler_output", DataType.Float, "batch", c.HiddenSize);
        }
        return g.Build("bert");
    }

    private static string Layer(GraphBuilder g, string p, BertLayer layer, string x, double eps)
    {
        var a = layer.attention;
        string Project(string name, TorchSharp.Modules.Linear linear, string input) =>
            g.Linear($"{p}.{name}", input, linear.weight!, linear.bias!);

        var q = Project("query", a.@self.query, x);
        var k = Project("key", a.@self.key, x);
        var v = Project("value", a.@self.value, x);
        g.Add("Reshape", [q, "heads_shape"], [$"{p}.q4"]);
        g.Add("Reshape", [k, "heads_shape"], [$"{p}.k4"]);
        g.Add("Reshape", [v, "heads_shape"], [$"{p}.v4"]);
        g.Add("Transpose", [$"{p}.q4"], [$"{p}.qh"], IntsAttribute("perm", 0, 2, 1, 3));
        g.Add("Transpose", [$"{p}.k4"], [$"{p}.khT"], IntsAttribute("perm", 0, 2, 3, 1));
        g.Add("Transpose", [$"{p}.v4"], [$"{p}.vh"], IntsAttribute("perm", 0, 2, 1, 3));
        g.Add("MatMul", [$"{p}.qh", $"{p}.khT"], [$"{p}.scores_raw"]);
        g.Add("Div", [$"{p}.scores_raw", "sqrt_d"], [$"{p}.scores_scaled"]);
        g.Add("Add", [$"{p}.scores_scaled", "mask_bias"], [$"{p}.scores"]);
        g.Add("Softmax", [$"{p}.scores"], [$"{p}.probs"], IntAttribute("axis", -1));
        g.Add("MatMul", [$"{p}.probs", $"{p}.vh"], [$"{p}.ctx_h"]);
        g.Add("Transpose", [$"{p}.ctx_h"], [$"{p}.ctx_t"], IntsAttribute("perm", 0, 2, 1, 3));
        g.Add("Reshape", [$"{p}.ctx_t", "merge_shape"], [$"{p}.ctx"]);

        var attnOut = Project("attention.output.dense", a.output.dense, $"{p}.ctx");
        g.Add("Add", [attnOut, x], [$"{p}.attn_residual"]);
        var attended = g.LayerNorm($"{p}.attention.output.LayerNorm", $"{p}.attn_residual", a.output.LayerNorm.weight!, a.output.LayerNorm.bias!, eps);

        var inter = Project("intermediate.dense", layer.intermediate.dense, attended);
        // transformers' "gelu": 0.5 x (1 + erf(x / √2)).
        g.Add("Div", [inter, "sqrt_2"], [$"{p}.gelu_div"]);
        g.Add("Erf", [$"{p}.gelu_div"], [$"{p}.gelu_erf"]);
        g.Add("Add", [$"{p}.gelu_erf", "one"], [$"{p}.gelu_add"]);
        g.Add("Mul", [inter, $"{p}.gelu_add"], [$"{p}.gelu_mul"]);
        g.Add("Mul", [$"{p}.gelu_mul", "half"], [$"{p}.gelu"]);

        var output = Project("output.dense", layer.output.dense, $"{p}.gelu");
        g.Add("Add", [output, attended], [$"{p}.out_residual"]);
        return g.LayerNorm($"{p}.output.LayerNorm", $"{p}.out_residual", layer.output.LayerNorm.weight!, layer.output.LayerNorm.bias!, eps);
    }

    /// <summary>Collects nodes, initializers and outputs; names are the tensors' graph names.</summary>
    private sealed class GraphBuilder(bool int8)
    {
        private readonly List<Message> _nodes = [];
        private readonly List<Message> _initializers = [];
        private readonly List<Message> _outputs = [];
        private int _count;

        public void Add(string op, string[] inputs, string[] outputs, params Message[] attributes) =>
            _nodes.Add(Node(op, $"{op}_{_count++}", inputs, outputs, attributes));

        public void Init(string name, Tensor weight, bool transpose = false)
        {
            using var cpu = (transpose ? weight.t() : weight.alias()).detach().to(ScalarType.Float32, CPU).contiguous();
            _initializers.Add(FloatTensor(name, cpu.shape, cpu.data<float>().ToArray()));
        }

        public void Const(string name, long[] values, bool scalar = false) =>
            _initializers.Add(Int64Tensor(name, scalar ? [] : [values.Length], values));

        public void ConstFloat(string name, float value) => _initializers.Add(FloatTensor(name, [], [value]));

        /// <summary>x·Wᵀ + b, with Wᵀ stored transposed as torch.onnx does (MatMul then Add).</summary>
        public string Linear(string name, string input, Tensor weight, Tensor bias)
        {
            if (int8) return QuantizedLinear(name, input, weight, bias);
            Init($"{name}.weight_t", weight, transpose: true);
            Init($"{name}.bias", bias);
            Add("MatMul", [input, $"{name}.weight_t"], [$"{name}.mm"]);
            Add("Add", [$"{name}.mm", $"{name}.bias"], [$"{name}.out"]);
            return $"{name}.out";
        }

        private string QuantizedLinear(string name, string input, Tensor weight, Tensor bias)
        {
            using var scope = NewDisposeScope();
            var w = weight.detach().to(ScalarType.Float32, CPU);
            var scale = w.abs().amax([1]).clamp_min(1e-12).div(127.0);
            var quantized = w.div(scale.unsqueeze(1)).round().clamp(-128, 127).to(ScalarType.Int8).t().contiguous();
            _initializers.Add(Tensor($"{name}.weight_q", DataType.Int8, quantized.shape, quantized.bytes));
            _initializers.Add(Tensor($"{name}.weight_zero", DataType.Int8, [quantized.shape[1]], new byte[quantized.shape[1]]));
            _initializers.Add(FloatTensor($"{name}.weight_scale", scale.shape, scale.contiguous().data<float>().ToArray()));
            Init($"{name}.bias", bias);
            Add("DynamicQuantizeLinear", [input], [$"{name}.xq", $"{name}.x_scale", $"{name}.x_zero"]);
            Add("MatMulInteger", [$"{name}.xq", $"{name}.weight_q", $"{name}.x_zero", $"{name}.weight_zero"], [$"{name}.mmi"]);
            Add("Cast", [$"{name}.mmi"], [$"{name}.mmf"], IntAttribute("to", (long)DataType.Float));
            Add("Mul", [$"{name}.x_scale", $"{name}.weight_scale"], [$"{name}.scale"]);
            Add("Mul", [$"{name}.mmf", $"{name}.scale"], [$"{name}.mm"]);
            Add("Add", [$"{name}.mm", $"{name}.bias"], [$"{name}.out"]);
            return $"{name}.out";
        }

        public string LayerNorm(string name, string input, Tensor gamma, Tensor beta, double eps)
        {
            Init($"{name}.weight", gamma);
            Init($"{name}.bias", beta);
            Add("LayerNormalization", [input, $"{name}.weight", $"{name}.bias"], [$"{name}.out"],
                IntAttribute("axis", -1), FloatAttribute("epsilon", (float)eps));
            return $"{name}.out";
        }

        public void Output(string name, string _, DataType type, params object[] dims) => _outputs.Add(ValueInfo(name, type, dims));

        public byte[] Build(string name)
        {
            var inputs = new[] { "input_ids", "attention_mask", "token_type_ids" }
                .Select(n => ValueInfo(n, DataType.Int64, "batch", "sequence"));
            return Model(Graph(name, _nodes, _initializers, inputs, _outputs), Opset, "berthost-benchmarks");
        }
    }
}
