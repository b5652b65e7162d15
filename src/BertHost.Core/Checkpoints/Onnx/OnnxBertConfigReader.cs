using System.Globalization;
using BertHost.Core.Bert;
using Onnx;

namespace BertHost.Core.Checkpoints.Onnx;

/// <summary>
/// Derives the Hugging Face <c>config.json</c> of a BERT export from its graph: sizes from the weight shapes, the head
/// count from the Reshape that splits the query into heads, the LayerNorm epsilon from the constant added to the
/// variance before <c>Sqrt</c>, and the activation from the operators after the intermediate projection.
/// </summary>
public static class OnnxBertConfigReader
{
    /// <summary>Operators that mark the feed-forward activation, and the transformers name each one means.</summary>
    private static readonly Dictionary<string, string> ActivationOps = new(StringComparer.Ordinal)
    {
        ["Erf"] = "gelu",       // 0.5·x·(1 + erf(x/√2)): the exact GELU
        ["Tanh"] = "gelu_new",  // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        ["Relu"] = "relu",
        ["Sigmoid"] = "silu",   // x·sigmoid(x)
    };

    public static BertConfig Infer(OnnxGraph graph, OnnxBertWeightMap map)
    {
        var words = map.Weights["embeddings.word_embeddings.weight"].Shape;
        var hidden = (int)words[1];
        var config = new BertConfig
        {
            Architectures = ["BertModel"],
            VocabSize = (int)words[0],
            HiddenSize = hidden,
            NumHiddenLayers = map.Layers,
            NumAttentionHeads = Heads(graph, map, hidden),
            IntermediateSize = (int)map.Weights["encoder.layer.0.intermediate.dense.bias"].Shape[0],
            HiddenAct = Activation(graph, map),
            MaxPositionEmbeddings = (int)map.Weights["embeddings.position_embeddings.weight"].Shape[0],
            TypeVocabSize = (int)map.Weights["embeddings.token_type_embeddings.weight"].Shape[0],
            LayerNormEps = Epsilon(graph, map),
        };
        if (config.Validate() is [var problem, ..]) throw graph.NotBert(problem);
        return config;
    }

    /// <summary>The node that adds a Linear layer's bias (an Add, or the Gemm that carries it), whose output is the layer's.</summary>
    private static NodeProto BiasNode(OnnxGraph graph, string bias) =>
        graph.Consumers(bias).FirstOrDefault(n => n.OpType is "Add" or "Gemm") ?? throw graph.NotBert($"no Add or Gemm consumes {bias}");

    /// <summary>The query projection is reshaped to [batch, sequence, heads, head size]; the last two are constants.</summary>
    private static int Heads(OnnxGraph graph, OnnxBertWeightMap map, int hidden)
    {
        var query = map.GraphName("encoder.layer.0.attention.self.query");
        var projected = BiasNode(graph, query + ".bias").Output[0];
        var reshape = graph.Consumers(projected).FirstOrDefault(n => n.OpType == "Reshape")
            ?? throw graph.NotBert($"no Reshape splits the output of {query} into attention heads (num_attention_heads)");
        var dims = ShapeElements(graph, reshape.Input[1]);
        if (dims is not { Length: 4 })
            throw graph.NotBert($"the Reshape after {query} has no constant [batch, sequence, heads, head size] shape (num_attention_heads)");
        var heads = dims[2] > 0 ? dims[2] : dims[3] > 0 && hidden % dims[3] == 0 ? hidden / dims[3] : 0;
        if (heads <= 0 || hidden % heads != 0 || (dims[3] > 0 && heads * dims[3] != hidden))
            throw graph.NotBert($"the Reshape after {query} splits hidden size {hidden} into [{string.Join(", ", dims.Skip(2))}], not [heads, head size] (num_attention_heads)");
        return (int)heads;
    }

    /// <summary>
    /// A Reshape's target shape, element by element: a constant, or a Concat of pieces of which the constant ones
    /// count (the computed ones, batch and sequence length, come out as -1). Null when it cannot be read.
    /// </summary>
    private static long[]? ShapeElements(OnnxGraph graph, string value)
    {
        if (graph.ConstantValues(value) is { } constant) return constant.Select(v => (long)v).ToArray();
        if (graph.Producer(value) is not { OpType: "Concat" } concat) return null;
        var elements = new List<long>();
        foreach (var piece in concat.Input)
            elements.AddRange(graph.ConstantValues(piece) is { } values ? values.Select(v => (long)v) : [-1L]);
        return [.. elements];
    }

    /// <summary>
    /// The embeddings LayerNorm's epsilon: a LayerNormalization node's attribute, or, where torch wrote LayerNorm out
    /// (ReduceMean, Sub, Pow, ReduceMean, Add ε, Sqrt, Div, Mul γ, Add β), the constant of the Add feeding the Sqrt
    /// found walking back from the Mul by γ. Every LayerNorm of a BERT config shares it.
    /// </summary>
    private static double Epsilon(OnnxGraph graph, OnnxBertWeightMap map)
    {
        var gamma = map.GraphName("embeddings.LayerNorm.weight");
        var consumers = graph.Consumers(gamma);
        if (consumers.FirstOrDefault(n => n.OpType == "LayerNormalization") is { } fused)
            return Rounded(OnnxGraph.FloatAttribute(fused, "epsilon") ?? 1e-5f);
        var frontier = consumers.Where(n => n.OpType == "Mul").ToList();
        for (var depth = 0; depth < 3 && frontier.Count > 0; depth++)
        {
            frontier = frontier.SelectMany(n => n.Input).Select(graph.Producer).OfType<NodeProto>().ToList();
            foreach (var sqrt in frontier.Where(n => n.OpType == "Sqrt"))
                if (graph.Producer(sqrt.Input[0]) is { OpType: "Add" } add)
                    foreach (var operand in add.Input)
                        if (graph.ConstantValues(operand) is [var eps] && eps > 0)
                            return Rounded((float)eps);
        }
        throw graph.NotBert($"no Sqrt(variance + epsilon) leads to {gamma} (layer_norm_eps)");
    }

    /// <summary>The float32 constant as the decimal it was written from (9.9999999e-13 → 1e-12).</summary>
    private static double Rounded(float value) =>
        double.Parse(value.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    /// <summary>The first activation operator after the intermediate projection, before the output projection's MatMul.</summary>
    private static string Activation(OnnxGraph graph, OnnxBertWeightMap map)
    {
        var intermediate = map.GraphName("encoder.layer.0.intermediate.dense");
        var frontier = new List<NodeProto> { BiasNode(graph, intermediate + ".bias") };
        for (var depth = 0; depth < 4 && frontier.Count > 0; depth++)
        {
            frontier = frontier.SelectMany(n => n.Output).SelectMany(graph.Consumers).Where(n => n.OpType is not ("MatMul" or "Gemm")).ToList();
            foreach (var node in frontier)
            {
                if (node.OpType == "Gelu")
                    return node.Attribute.FirstOrDefault(a => a.Name == "approximate")?.S.ToStringUtf8() == "tanh" ? "gelu_new" : "gelu";
                if (ActivationOps.TryGetValue(node.OpType, out var name)) return name;
            }
        }
        throw graph.NotBert($"no activation (Erf, Tanh, Relu, Sigmoid or Gelu) follows {intermediate} (hidden_act)");
    }
}
