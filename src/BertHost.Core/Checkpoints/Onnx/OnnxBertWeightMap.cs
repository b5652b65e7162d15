using Onnx;

namespace BertHost.Core.Checkpoints.Onnx;

/// <summary>One Hugging Face weight found in the graph: the initializer holding it, stored transposed or not.</summary>
public sealed record OnnxWeight(TensorProto Tensor, bool Transposed)
{
    /// <summary>The shape in Hugging Face layout (<c>[out, in]</c> for a Linear weight).</summary>
    public long[] Shape => Transposed ? [.. OnnxGraph.Shape(Tensor).Reverse()] : OnnxGraph.Shape(Tensor);
}

/// <summary>
/// Where each Hugging Face <c>BertModel</c> weight sits in a torch.onnx export. Embeddings, LayerNorm parameters and
/// biases keep their Hugging Face names as initializers (possibly under a prefix such as <c>bert.</c>). Linear weights
/// lose theirs when torch folds the transpose into the constant: the weight is then an unnamed <c>[in, out]</c>
/// initializer multiplied in by the <c>MatMul</c> whose output the <c>Add</c> of the matching bias consumes, so
/// <c>X.bias</c> names <c>X.weight</c> = that initializer transposed. A Linear on 2-D input (the pooler) is a
/// <c>Gemm</c> instead, usually with its named weight and <c>transB=1</c>.
/// </summary>
public sealed class OnnxBertWeightMap
{
    private const string WordEmbeddings = "embeddings.word_embeddings.weight";

    private static readonly string[] LayerLinears =
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"];

    private static readonly string[] LayerNorms = ["attention.output.LayerNorm", "output.LayerNorm"];

    private readonly OnnxGraph _graph;
    private readonly Dictionary<string, OnnxWeight> _weights = new(StringComparer.Ordinal);

    private OnnxBertWeightMap(OnnxGraph graph, string prefix)
    {
        _graph = graph;
        Prefix = prefix;
    }

    /// <summary>What the graph's names carry before the <c>BertModel</c> keys: "" or e.g. "bert.".</summary>
    public string Prefix { get; }

    public int Layers { get; private set; }

    public bool HasPooler { get; private set; }

    /// <summary>Every body weight by its plain <c>BertModel</c> key.</summary>
    public IReadOnlyDictionary<string, OnnxWeight> Weights => _weights;

    /// <summary>The graph's name for a <c>BertModel</c> key.</summary>
    public string GraphName(string key) => Prefix + key;

    /// <summary>Finds every body weight; the first one that cannot be found is an <see cref="OnnxImportException"/> naming it.</summary>
    public static OnnxBertWeightMap Find(OnnxGraph graph)
    {
        var anchor = graph.Initializers.Select(t => t.Name)
            .Where(n => n == WordEmbeddings || n.EndsWith("." + WordEmbeddings, StringComparison.Ordinal))
            .OrderBy(n => n.Length).FirstOrDefault()
            ?? throw graph.NotBert($"no initializer named {WordEmbeddings}");
        var map = new OnnxBertWeightMap(graph, anchor[..^WordEmbeddings.Length]);
        map.FindAll();
        return map;
    }

    private void FindAll()
    {
        foreach (var name in new[] { "word_embeddings", "position_embeddings", "token_type_embeddings" }) Named($"embeddings.{name}.weight");
        Norm("embeddings.LayerNorm");

        while (_graph.Initializer(GraphName($"encoder.layer.{Layers}.attention.self.query.bias")) is not null) Layers++;
        if (Layers == 0) throw _graph.NotBert($"no initializer named {GraphName("encoder.layer.0.attention.self.query.bias")}");
        for (var i = 0; i < Layers; i++)
        {
            foreach (var linear in LayerLinears) Linear($"encoder.layer.{i}.{linear}");
            foreach (var norm in LayerNorms) Norm($"encoder.layer.{i}.{norm}");
        }

        HasPooler = _graph.Initializer(GraphName("pooler.dense.bias")) is not null;
        if (HasPooler) Linear("pooler.dense");
    }

    private void Norm(string module)
    {
        Named($"{module}.weight");
        Named($"{module}.bias");
    }

    private void Named(string key) =>
        Add(key, new OnnxWeight(_graph.Initializer(GraphName(key)) ?? throw _graph.NotBert($"no initializer named {GraphName(key)}"), Transposed: false));

    /// <summary>Weights and embedding tables are matrices, biases and LayerNorm parameters vectors.</summary>
    private void Add(string key, OnnxWeight weight)
    {
        var rank = key.EndsWith(".bias", StringComparison.Ordinal) || key.Contains(".LayerNorm.", StringComparison.Ordinal) ? 1 : 2;
        var shape = OnnxGraph.Shape(weight.Tensor);
        if (shape.Length != rank || shape.Any(d => d <= 0 || d > int.MaxValue))
            throw _graph.NotBert($"{GraphName(key)} has shape [{string.Join(", ", shape)}], not a {(rank == 1 ? "vector" : "matrix")}");
        _weights[key] = weight;
    }

    /// <summary>A Linear layer: its named bias, and its weight found through the node that adds the bias.</summary>
    private void Linear(string module)
    {
        Named($"{module}.bias");
        var bias = GraphName($"{module}.bias");
        var weight = GraphName($"{module}.weight");
        Add($"{module}.weight", _graph.Initializer(weight) is { } named
            ? new OnnxWeight(named, Transposed: StoredInputByOutput(weight))
            : FromBiasNode(bias));
    }

    /// <summary>
    /// A weight kept under its own name is normally <c>[out, in]</c> (fed to a Transpose, or to a Gemm with transB=1);
    /// only a MatMul taking it directly, or a Gemm without transB, means it is stored <c>[in, out]</c>.
    /// </summary>
    private bool StoredInputByOutput(string weight) =>
        _graph.Consumers(weight).Any(n => n.OpType == "MatMul" || (n.OpType == "Gemm" && OnnxGraph.IntAttribute(n, "transB") is null or 0));

    private OnnxWeight FromBiasNode(string bias)
    {
        var consumers = _graph.Consumers(bias);
        if (consumers.FirstOrDefault(n => n.OpType == "Gemm" && n.Input.Count > 2 && n.Input[2] == bias) is { } gemm)
        {
            var b = _graph.Initializer(gemm.Input[1]) ?? throw _graph.NotBert($"the Gemm that adds {bias} multiplies by a computed value, not a weight initializer");
            return new OnnxWeight(b, Transposed: OnnxGraph.IntAttribute(gemm, "transB") is null or 0);
        }
        var add = consumers.FirstOrDefault(n => n.OpType == "Add")
            ?? throw _graph.NotBert($"no Add or Gemm consumes {bias}");
        var matMul = add.Input.Where(i => i != bias).Select(_graph.Producer).FirstOrDefault(n => n?.OpType == "MatMul")
            ?? throw _graph.NotBert($"no MatMul feeds the Add of {bias}");
        var operand = matMul.Input[1];
        if (_graph.Initializer(operand) is { } folded) return new OnnxWeight(folded, Transposed: true);
        // Exported without constant folding: MatMul(x, Transpose(W)) with W stored [out, in].
        if (_graph.Producer(operand) is { OpType: "Transpose" } transpose && _graph.Initializer(transpose.Input[0]) is { } plain)
            return new OnnxWeight(plain, Transposed: false);
        throw _graph.NotBert($"the MatMul before the Add of {bias} multiplies by a computed value, not a weight initializer");
    }
}
