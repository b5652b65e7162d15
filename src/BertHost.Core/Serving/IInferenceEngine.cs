using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Text;

namespace BertHost.Core.Serving;

/// <summary>What the API layer (HTTP, CLI) asks of the serving core.</summary>
public interface IInferenceEngine
{
    /// <summary>
    /// True once the body is loaded and no required head failed to load (a head the deployment marks
    /// <c>required: false</c> does not block readiness).
    /// </summary>
    bool IsReady { get; }

    /// <summary>Every configured head, in configuration order, with its state.</summary>
    IReadOnlyList<HeadStatus> Heads { get; }

    /// <summary>The head of that name, or null.</summary>
    /// <summary>Head <paramref name="name"/>'s status, or null; <paramref name="withDetails"/> asks the plugin to describe itself (not on every request).</summary>
    HeadStatus? FindHead(string name, bool withDetails = false);

    /// <summary>Facts about the body (model folder, fingerprint, device, dtype, sizes).</summary>
    JsonObject DescribeBody();

    /// <summary>
    /// Runs <paramref name="inputs"/> through one head. Returns one output per input, in input order. Failures are
    /// <see cref="ServingException"/>s (field names like <c>inputs[2].text</c>).
    /// </summary>
    Task<IReadOnlyList<JsonNode>> PredictAsync(string head, IReadOnlyList<JsonElement> inputs, JsonElement parameters, CancellationToken cancellationToken);

    /// <summary>
    /// Runs every input through several heads with ONE body pass per input sequence, shared by all of them (when the
    /// heads encode an input to the same token sequences). Returns, per input, an object keyed by head name.
    /// </summary>
    /// <summary>
    /// The served body's tokenization of each text (no truncation), with or without the special tokens; bounded by
    /// the host's input and token limits like a prediction (<see cref="ServingException"/>s name <c>inputs[i]</c>).
    /// </summary>
    IReadOnlyList<EncodedSequence> Tokenize(IReadOnlyList<string> texts, bool addSpecialTokens);

    Task<IReadOnlyList<JsonObject>> PredictManyAsync(IReadOnlyList<string> heads, IReadOnlyList<JsonElement> inputs, JsonElement parameters, CancellationToken cancellationToken);
}

/// <summary>A head's state as reported by <c>/v1/heads</c> and health checks.</summary>
public sealed record HeadStatus
{
    public required string Name { get; init; }
    public required string Kind { get; init; }

    /// <summary><c>ready</c>, <c>failed</c> or <c>stale</c> (trained on another body fingerprint: refused).</summary>
    public required string State { get; init; }

    /// <summary>Why the head is not ready.</summary>
    public string? Error { get; init; }

    public IReadOnlyList<string> Labels { get; init; } = [];

    /// <summary>Plugin assembly path and its SHA-256.</summary>
    public string? Plugin { get; init; }
    public string? PluginSha256 { get; init; }

    /// <summary>Kind-specific description from the head (options in force...).</summary>
    public JsonObject? Details { get; init; }

    /// <summary>Whether the host's readiness waits for this head (<c>required</c> in the deployment, default true).</summary>
    public bool Required { get; init; } = true;

    public bool IsReady => State == "ready";
}
