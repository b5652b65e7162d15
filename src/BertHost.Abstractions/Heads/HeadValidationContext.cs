using System.Text.Json;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// One head's YAML entry and the body it sits on: what <see cref="IHeadKind.Validate"/> gets to check a head without
/// building it (no tokenizer, checkpoint store or weights are loaded: <c>berthost validate</c> runs before anything is),
/// and the part of <see cref="HeadContext"/> that describes the head.
/// </summary>
public class HeadValidationContext
{
    /// <summary>The head's name (unique in the deployment).</summary>
    public required string Name { get; init; }

    /// <summary>The kind it was declared with.</summary>
    public required string Kind { get; init; }

    /// <summary>Labels from YAML; null when not given (the head may take them from its weights).</summary>
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>
    /// Absolute path of the head's weights: a head folder the host saved, or a Hugging Face <c>BertFor...</c> folder to
    /// import; null for a fresh head. <see cref="IHeadKind.Validate"/> must not read it.
    /// </summary>
    public string? WeightsPath { get; init; }

    /// <summary>The <c>options:</c> object from YAML as JSON (an empty object when absent).</summary>
    public JsonElement Options { get; init; } = EmptyObject;

    /// <summary>
    /// The served body. When validating, the body is not loaded: it is described by its config.json, with an empty
    /// <see cref="BodyInfo.Fingerprint"/> and <see cref="BodyInfo.HasPooler"/> true (a missing pooler is found when serving).
    /// </summary>
    public required BodyInfo Body { get; init; }

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();
}
