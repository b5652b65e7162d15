using BertHost.Abstractions.Text;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// What one input becomes for the body: one or more token sequences (windows of a long text, one per choice of a
/// multiple-choice item), plus whatever the head needs later to decode or to compute its loss.
/// </summary>
public sealed class HeadFeatures
{
    /// <summary>The body rows this input needs, in the order the head wants them back.</summary>
    public required IReadOnlyList<EncodedSequence> Sequences { get; init; }

    /// <summary>Head-private data: original text, request parameters, training labels. The host never reads it.</summary>
    public object? State { get; init; }

    /// <summary>Total tokens of the rows (what the host's token limits count: per input, per request and in the queue).</summary>
    public int TokenCount => Sequences.Sum(s => s.Length);
}
