using System.Text.Json;

namespace BertHost.Client;

/// <summary>The Open Inference Protocol's <c>GET /v2</c>.</summary>
public sealed record ServerMetadata(string Name, string Version, IReadOnlyList<string> Extensions);

/// <summary>A tensor a model reads or answers: name, datatype (<c>BYTES</c>, <c>FP32</c>, <c>INT64</c>) and shape (-1: any size).</summary>
public sealed record TensorMetadata(string Name, string Datatype, IReadOnlyList<long> Shape);

/// <summary>The Open Inference Protocol's <c>GET /v2/models/{name}</c>: a head as a model; the platform is <c>berthost_</c> and the head's kind.</summary>
public sealed record ModelMetadata(string Name, string Platform, IReadOnlyList<TensorMetadata> Inputs, IReadOnlyList<TensorMetadata> Outputs);

/// <summary>
/// An input tensor of an inference request. The host reads <c>BYTES</c> tensors named after the fields of the head's
/// input (<c>text</c>, <c>text_pair</c>, <c>question</c>, <c>context</c>, <c>choices</c>, <c>tokens</c>), the first
/// dimension the batch: make them with <see cref="Bytes(string, string[])"/>.
/// </summary>
public sealed record InferenceInput(string Name, IReadOnlyList<long> Shape, string Datatype, object Data)
{
    /// <summary>A <c>BYTES</c> tensor of shape <c>[n]</c>: one string per batch row.</summary>
    public static InferenceInput Bytes(string name, params string[] rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return new InferenceInput(name, [rows.Length], "BYTES", rows);
    }

    /// <summary>A <c>BYTES</c> tensor of shape <c>[n, k]</c>: k strings per batch row (e.g. <c>choices</c>, <c>tokens</c>).</summary>
    public static InferenceInput Bytes(string name, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var width = rows.Count == 0 ? 0 : rows[0].Count;
        if (rows.Any(r => r.Count != width)) throw new ArgumentException("every row of a [n, k] tensor needs the same k strings", nameof(rows));
        return new InferenceInput(name, [rows.Count, width], "BYTES", rows.SelectMany(r => r).ToArray());
    }
}

/// <summary>An output the request asks for (by default every output of the model).</summary>
public sealed record RequestedOutput(string Name);

/// <summary>An Open Inference Protocol request (<c>POST /v2/models/{name}/infer</c>).</summary>
public sealed record InferenceRequest
{
    public InferenceRequest(params InferenceInput[] inputs) => Inputs = inputs;

    public string? Id { get; init; }

    /// <summary>Passed to the head as request parameters (e.g. <c>top_k</c>, <c>aggregation</c>).</summary>
    public IReadOnlyDictionary<string, object?>? Parameters { get; init; }

    public IReadOnlyList<InferenceInput> Inputs { get; init; }

    /// <summary>Which outputs to return; null: all.</summary>
    public IReadOnlyList<RequestedOutput>? Outputs { get; init; }
}

/// <summary>An Open Inference Protocol answer.</summary>
public sealed record InferenceResponse(string ModelName, string? Id, IReadOnlyList<InferenceOutput> Outputs)
{
    /// <summary>The output named <paramref name="name"/>.</summary>
    public InferenceOutput Output(string name) => Outputs.FirstOrDefault(o => o.Name == name)
        ?? throw new KeyNotFoundException($"the answer has no output '{name}' (outputs: {string.Join(", ", Outputs.Select(o => o.Name))})");
}

/// <summary>An output tensor, its data flat in row-major order.</summary>
public sealed record InferenceOutput(string Name, string Datatype, IReadOnlyList<long> Shape, JsonElement Data)
{
    /// <summary>The data of an <c>FP32</c> tensor.</summary>
    public float[] AsSingles() => Read<float[]>("FP32");

    /// <summary>The data of an <c>INT64</c> tensor.</summary>
    public long[] AsInt64s() => Read<long[]>("INT64");

    /// <summary>The data of a <c>BYTES</c> tensor (a head kind without typed outputs: each answer's JSON).</summary>
    public string[] AsStrings() => Read<string[]>("BYTES");

    /// <summary>Row <paramref name="row"/> of a <c>[n, k]</c> <c>FP32</c> tensor.</summary>
    public float[] Row(int row)
    {
        if (Shape.Count != 2) throw new InvalidOperationException($"output '{Name}' has shape [{string.Join(", ", Shape)}], not [n, k]");
        var width = (int)Shape[1];
        return AsSingles().AsSpan(row * width, width).ToArray();
    }

    private T Read<T>(string datatype) => Datatype == datatype
        ? Data.Deserialize<T>(BertHostClient.JsonOptions)!
        : throw new InvalidOperationException($"output '{Name}' is {Datatype}, not {datatype}");
}
