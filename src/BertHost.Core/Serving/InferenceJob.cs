using System.Diagnostics;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;

namespace BertHost.Core.Serving;

/// <summary>One input for one head, encoded; filled with the head's output or its failure.</summary>
public sealed class HeadWork(HeadSlot slot, HeadFeatures features)
{
    public HeadSlot Slot { get; } = slot;
    public HeadFeatures Features { get; } = features;
    public JsonNode? Output { get; internal set; }
    public Exception? Failure { get; internal set; }
}

/// <summary>
/// One input of a request with the heads it goes to. The heads' sequences ride in the same body pass; identical
/// sequences (e.g. several classifiers of the same text) become one body row.
/// </summary>
public sealed class InferenceJob
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public InferenceJob(IReadOnlyList<HeadWork> work, CancellationToken cancellationToken)
    {
        Work = work;
        CancellationToken = cancellationToken;
        MaxSequenceLength = work.SelectMany(w => w.Features.Sequences).Select(s => s.Length).DefaultIfEmpty(0).Max();
        RowCount = work.Sum(w => w.Features.Sequences.Count);
        BodyRows = work.SelectMany(w => w.Features.Sequences.Select(s => (w.Slot.RowGroup, new SequenceKey(s)))).Distinct().Count();
        Tokens = work.Sum(w => (long)w.Features.TokenCount);
    }

    /// <summary>Tokens of all its sequences, every head's (before de-duplication: what the token limits count).</summary>
    public long Tokens { get; }

    public IReadOnlyList<HeadWork> Work { get; }
    public CancellationToken CancellationToken { get; }
    public long EnqueuedAt { get; } = Stopwatch.GetTimestamp();

    /// <summary>When it was admitted, on the wall clock (where its queue_wait span starts).</summary>
    public DateTimeOffset EnqueuedUtc { get; } = DateTimeOffset.UtcNow;

    /// <summary>The span of the request it belongs to (its queue_wait span's parent, the body pass's link); default when none.</summary>
    public ActivityContext Parent { get; } = Activity.Current?.Context ?? default;
    public int MaxSequenceLength { get; }

    /// <summary>Rows before de-duplication (every head's sequences).</summary>
    public int RowCount { get; }

    /// <summary>
    /// Body rows it needs: its heads' sequences after de-duplication (four classifiers of one text share one row), what
    /// a pass's token budget counts.
    /// </summary>
    public int BodyRows { get; }

    public Task Completion => _done.Task;

    internal void Complete() => _done.TrySetResult();

    internal void Fail(Exception e) => _done.TrySetException(e);

    internal void Cancel() => _done.TrySetCanceled(CancellationToken);
}
