namespace BertHost.Core.Checkpoints;

/// <summary>What loading a body from a checkpoint found, for logs and for the heads that read the set-aside keys.</summary>
public sealed record BodyLoadReport
{
    /// <summary>The checkpoint file(s) the weights came from.</summary>
    public required string Source { get; init; }

    /// <summary>Body parameters loaded (canonical names).</summary>
    public required int LoadedTensors { get; init; }

    /// <summary>Keys for task or pre-training heads (<c>classifier.*</c>, <c>qa_outputs.*</c>, <c>cls.*</c>, ...), as stored.</summary>
    public required IReadOnlyList<string> HeadKeys { get; init; }

    /// <summary>Body-looking keys that the configured encoder has no parameter for (e.g. a 13th layer), as stored.</summary>
    public required IReadOnlyList<string> UnexpectedKeys { get; init; }

    /// <summary>Whether the checkpoint carries pooler weights (task models without a pooler omit them).</summary>
    public required bool HasPooler { get; init; }

    /// <summary>True when the body keys were stored under the <c>bert.</c> prefix.</summary>
    public required bool Prefixed { get; init; }
}
