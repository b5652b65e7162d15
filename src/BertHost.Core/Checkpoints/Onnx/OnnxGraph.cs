using System.Numerics;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace BertHost.Core.Checkpoints.Onnx;

/// <summary>
/// A parsed ONNX model (OnnxSharp's generated <c>onnx.proto</c> classes) with the look-ups the BERT import walks:
/// initializers by name, the node producing a value, the nodes consuming it, and constant values whether they are
/// initializers or <c>Constant</c> nodes (torch.onnx folds some constants into initializers and leaves others as nodes).
/// </summary>
public sealed class OnnxGraph
{
    private readonly Dictionary<string, TensorProto> _initializers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<NodeProto>> _consumers = new(StringComparer.Ordinal);

    private OnnxGraph(string description, ModelProto model)
    {
        Description = description;
        Model = model;
        foreach (var t in model.Graph.Initializer) _initializers.TryAdd(t.Name, t);
        foreach (var node in model.Graph.Node)
        {
            foreach (var output in node.Output) _producers.TryAdd(output, node);
            foreach (var input in node.Input)
            {
                if (input.Length == 0) continue; // an omitted optional input
                if (!_consumers.TryGetValue(input, out var list)) _consumers[input] = list = [];
                list.Add(node);
            }
        }
    }

    /// <summary>What was read (file, or resource and file), for messages.</summary>
    public string Description { get; }

    public ModelProto Model { get; }

    public IEnumerable<TensorProto> Initializers => Model.Graph.Initializer;

    /// <summary>"pytorch 1.10, opset 13": who wrote the graph, for reports.</summary>
    public string ProducedBy =>
        $"{Model.ProducerName} {Model.ProducerVersion}".Trim() is { Length: > 0 } p ? $"{p}, opset {Opset}" : $"opset {Opset}";

    public long Opset => Model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(0).Max();

    /// <summary>Parses the bytes of an <c>.onnx</c> file; anything that is not a model with a graph is an <see cref="OnnxImportException"/>.</summary>
    public static OnnxGraph Parse(string description, ReadOnlySpan<byte> bytes)
    {
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxImportException($"{description}: not an ONNX model ({e.Message})");
        }
        if (model.Graph is null || model.Graph.Node.Count == 0)
            throw new OnnxImportException($"{description}: not an ONNX model (no graph nodes)");
        return new OnnxGraph(description, model);
    }

    /// <summary>The error for a graph that lacks part of a Hugging Face BERT export: <paramref name="what"/> names the part.</summary>
    public OnnxImportException NotBert(string what) => new($"{Description}: not a Hugging Face BERT export: {what}");

    public TensorProto? Initializer(string name) => _initializers.GetValueOrDefault(name);

    public NodeProto? Producer(string value) => _producers.GetValueOrDefault(value);

    public IReadOnlyList<NodeProto> Consumers(string value) => _consumers.TryGetValue(value, out var list) ? list : [];

    /// <summary>
    /// The values of a constant: an initializer or the output of a <c>Constant</c> node (its <c>value</c> tensor or
    /// <c>value_float(s)</c>/<c>value_int(s)</c>), as doubles; null when <paramref name="value"/> is computed.
    /// </summary>
    public double[]? ConstantValues(string value)
    {
        if (Initializer(value) is { } init) return TryNumbers(init);
        if (Producer(value) is not { OpType: "Constant" } node) return null;
        foreach (var a in node.Attribute)
        {
            switch (a.Name)
            {
                case "value": return TryNumbers(a.T);
                case "value_float": return [a.F];
                case "value_floats": return a.Floats.Select(f => (double)f).ToArray();
                case "value_int": return [a.I];
                case "value_ints": return a.Ints.Select(i => (double)i).ToArray();
            }
        }
        return null;
    }

    public static long? IntAttribute(NodeProto node, string name) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.I : null;

    public static float? FloatAttribute(NodeProto node, string name) =>
        node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.F : null;

    public static long[] Shape(TensorProto tensor) => tensor.Dims.ToArray();

    /// <summary>A float32 initializer's values (raw little-endian bytes or the float_data field).</summary>
    public float[] Floats(TensorProto tensor, string key)
    {
        if (tensor.DataLocation == TensorProto.Types.DataLocation.External)
            throw new OnnxImportException($"{Description}: {Label(tensor, key)} is stored in an external data file; export the graph with its weights inside");
        if (tensor.DataType != (int)TensorProto.Types.DataType.Float)
            throw new OnnxImportException($"{Description}: {Label(tensor, key)} is {(TensorProto.Types.DataType)tensor.DataType}; only float32 weights can be imported");
        var count = Shape(tensor).Aggregate(1L, (n, d) => checked(n * d));
        float[] values = tensor.RawData.Length > 0
            ? MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray()
            : tensor.FloatData.ToArray();
        if (values.Length != count)
            throw new OnnxImportException($"{Description}: {Label(tensor, key)} holds {values.Length} values for shape [{string.Join(",", tensor.Dims)}]");
        return values;
    }

    /// <summary>A weight in messages: its key, and the initializer holding it where that is named otherwise (torch's numbered names).</summary>
    private static string Label(TensorProto tensor, string key) => tensor.Name == key ? key : $"{key} (initializer '{tensor.Name}')";

    private static double[]? TryNumbers(TensorProto? t)
    {
        if (t is null || t.DataLocation == TensorProto.Types.DataLocation.External) return null;
        var raw = t.RawData.Span;
        return (TensorProto.Types.DataType)t.DataType switch
        {
            TensorProto.Types.DataType.Float => raw.Length > 0 ? Widen(MemoryMarshal.Cast<byte, float>(raw)) : t.FloatData.Select(f => (double)f).ToArray(),
            TensorProto.Types.DataType.Double => raw.Length > 0 ? MemoryMarshal.Cast<byte, double>(raw).ToArray() : t.DoubleData.ToArray(),
            TensorProto.Types.DataType.Int64 => raw.Length > 0 ? Widen(MemoryMarshal.Cast<byte, long>(raw)) : t.Int64Data.Select(i => (double)i).ToArray(),
            TensorProto.Types.DataType.Int32 => raw.Length > 0 ? Widen(MemoryMarshal.Cast<byte, int>(raw)) : t.Int32Data.Select(i => (double)i).ToArray(),
            _ => null,
        };
    }

    private static double[] Widen<T>(ReadOnlySpan<T> values) where T : INumber<T>
    {
        var result = new double[values.Length];
        for (var i = 0; i < values.Length; i++) result[i] = double.CreateChecked(values[i]);
        return result;
    }
}
