using System.Text.Json;
using BertHost.Abstractions.Text;
using Microsoft.Extensions.Logging;

namespace BertHost.Abstractions.Heads;

/// <summary>Everything a head kind gets from the host to build one head.</summary>
public sealed class HeadContext
{
    /// <summary>The head's name (unique in the deployment).</summary>
    public required string Name { get; init; }

    /// <summary>The kind it was declared with.</summary>
    public required string Kind { get; init; }

    /// <summary>Labels from YAML; null when not given (the head may take them from its weights).</summary>
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>
    /// Absolute path of the head's weights: a head folder the host saved, or a Hugging Face <c>BertFor...</c> folder to
    /// import; null for a fresh head.
    /// </summary>
    public string? WeightsPath { get; init; }

    /// <summary>The <c>options:</c> object from YAML as JSON (an empty object when absent).</summary>
    public JsonElement Options { get; init; } = EmptyObject;

    public required BodyInfo Body { get; init; }

    public required ITextTokenizer Tokenizer { get; init; }

    /// <summary>Reading and writing checkpoint tensors in the formats the host supports.</summary>
    public required ICheckpointStore Checkpoints { get; init; }

    public required ILogger Logger { get; init; }

    /// <summary>
    /// The deployment's policy for inputs longer than <see cref="BodyInfo.MaxSequenceLength"/>: true (default) =
    /// truncate (or split into windows, for heads that do); false = refuse them with a <see cref="HeadInputException"/>.
    /// </summary>
    public bool TruncateOversized { get; init; } = true;

    /// <summary>Seed for fresh weights, so a deployment starts the same way every time.</summary>
    public long Seed { get; init; } = 42;

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement.Clone();
}
