using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Checkpoints.Onnx;

/// <summary>
/// The graph's body weights as a checkpoint under their <c>BertModel</c> keys, Linear weights put back to
/// <c>[out, in]</c>, so <see cref="BertCheckpointLoader"/> checks and copies them like any other checkpoint's.
/// </summary>
public sealed class OnnxBertTensorSource(OnnxGraph graph, OnnxBertWeightMap map) : ITensorSource
{
    public string Description => graph.Description;

    public IReadOnlyList<TensorInfo> Tensors { get; } =
        map.Weights.OrderBy(w => w.Key, StringComparer.Ordinal).Select(w => new TensorInfo(w.Key, "F32", w.Value.Shape)).ToList();

    public bool Contains(string name) => map.Weights.ContainsKey(name);

    public Tensor Read(string name)
    {
        if (!map.Weights.TryGetValue(name, out var weight)) throw new CheckpointException(Description, name, "no such tensor");
        var stored = tensor(graph.Floats(weight.Tensor, map.GraphName(name)), OnnxGraph.Shape(weight.Tensor));
        if (!weight.Transposed) return stored;
        using (stored) return stored.t().contiguous();
    }

    public void Dispose() { }
}
