using BertHost.Abstractions.Text;
using Microsoft.Extensions.Logging;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// Everything a head kind gets from the host to build one head: the head's configuration (<see cref="HeadValidationContext"/>)
/// and the host's services (tokenizer, checkpoint store, logger) and policies.
/// </summary>
public sealed class HeadContext : HeadValidationContext
{
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
}
