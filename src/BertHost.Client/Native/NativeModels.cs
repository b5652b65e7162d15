using System.Text.Json;
using System.Text.Json.Serialization;

namespace BertHost.Client;

/// <summary>A head as <c>GET /v1/heads</c> lists it.</summary>
public record HeadInfo
{
    public required string Name { get; init; }

    /// <summary>The head kind, e.g. <c>text-classification</c>, <c>embedding</c>, or a third-party plugin's.</summary>
    public required string Kind { get; init; }

    /// <summary><c>ready</c>, <c>failed</c> (did not load) or <c>stale</c> (trained on another body).</summary>
    public required string State { get; init; }

    /// <summary>Why the head is not ready.</summary>
    public string? Error { get; init; }

    public IReadOnlyList<string> Labels { get; init; } = [];

    /// <summary>The plugin assembly's file name.</summary>
    public string? Plugin { get; init; }

    public string? PluginSha256 { get; init; }

    /// <summary>Whether the head serves.</summary>
    [JsonIgnore]
    public bool IsReady => State == "ready";

    /// <summary>Fields this client version does not know.</summary>
    [JsonExtensionData]
    public IDictionary<string, JsonElement>? AdditionalProperties { get; init; }
}

/// <summary>A head as <c>GET /v1/heads/{name}</c> describes it.</summary>
public sealed record HeadDetail : HeadInfo
{
    /// <summary>Kind-specific: options in force, serving error count and last error, weights (relative to the deployment).</summary>
    public JsonElement Details { get; init; }
}

internal sealed record HeadList(IReadOnlyList<HeadInfo> Heads);

/// <summary>The shared body, as <c>GET /v1/body</c> describes it.</summary>
public sealed record BodyInfo
{
    /// <summary>The model folder, relative to the deployment's folder (or just its name).</summary>
    public string? ModelFolder { get; init; }

    /// <summary>What trained heads are bound to.</summary>
    public required string Fingerprint { get; init; }

    public required string Device { get; init; }
    public required string Dtype { get; init; }
    public int HiddenSize { get; init; }
    public int NumHiddenLayers { get; init; }
    public int NumAttentionHeads { get; init; }
    public int VocabSize { get; init; }
    public int MaxSequenceLength { get; init; }
    public bool HasPooler { get; init; }

    /// <summary>What runs the attention core: <c>cpu_avx512</c>, <c>cpu_avx2</c> or <c>sdpa</c>.</summary>
    public string? AttentionCore { get; init; }

    /// <summary>What the load-time checks of the fast paths chose.</summary>
    public JsonElement? FastPaths { get; init; }

    public long BodyPasses { get; init; }
    public long BodyRows { get; init; }

    /// <summary>Everything else the host reports (prepacked weights, precision, quantization...).</summary>
    [JsonExtensionData]
    public IDictionary<string, JsonElement>? AdditionalProperties { get; init; }
}

/// <summary><c>GET /healthz</c>.</summary>
public sealed record Liveness(string Status);

/// <summary><c>GET /readyz</c>: 200 when ready, 503 (read as an answer, not an error) when not.</summary>
public sealed record Readiness
{
    /// <summary><c>ready</c>, <c>not_ready</c> (a required head failed to load) or <c>stopping</c>.</summary>
    public required string Status { get; init; }

    public IReadOnlyList<HeadReadiness> Heads { get; init; } = [];

    [JsonIgnore]
    public bool IsReady => Status == "ready";
}

/// <summary>One head in <see cref="Readiness"/>.</summary>
public sealed record HeadReadiness(string Name, string State, bool Required, string? Error);

/// <summary>
/// The answer of <c>POST /v1/heads/{name}/predict</c>: one JSON output per input, in input order, as the head wrote it
/// (any head kind, third-party ones included); <see cref="As{T}"/> reads them as a type.
/// </summary>
public sealed record PredictResponse(IReadOnlyList<JsonElement> Outputs)
{
    /// <summary>Every output read as <typeparamref name="T"/> (snake_case JSON names).</summary>
    public IReadOnlyList<T> As<T>() => Outputs.Select(o => o.Deserialize<T>(BertHostClient.JsonOptions)!).ToList();
}

/// <summary>
/// The answer of <c>POST /v1/predict</c>: per input, each head's output keyed by head name; <see cref="For{T}"/> reads
/// one head's outputs as a type.
/// </summary>
public sealed record PredictManyResponse(IReadOnlyList<IReadOnlyDictionary<string, JsonElement>> Outputs)
{
    /// <summary>Head <paramref name="head"/>'s output of every input, read as <typeparamref name="T"/>.</summary>
    public IReadOnlyList<T> For<T>(string head) => Outputs.Select(o => o.TryGetValue(head, out var output)
        ? output.Deserialize<T>(BertHostClient.JsonOptions)!
        : throw new KeyNotFoundException($"the answer has no output of head '{head}' (heads: {string.Join(", ", o.Keys)})")).ToList();
}
