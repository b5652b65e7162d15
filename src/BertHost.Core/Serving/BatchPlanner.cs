using BertHost.Abstractions.Text;
using BertHost.Core.Body;
using BertHost.Core.Lora;

namespace BertHost.Core.Serving;

/// <summary>One body pass: the jobs it serves and its de-duplicated rows.</summary>
public sealed class PlannedBatch
{
    public required IReadOnlyList<InferenceJob> Jobs { get; init; }

    /// <summary>Unique sequences, in row order.</summary>
    public required IReadOnlyList<EncodedSequence> Rows { get; init; }

    /// <summary>For each head work of <see cref="Jobs"/>: the body row of each of its sequences.</summary>
    public required IReadOnlyDictionary<HeadWork, int[]> RowsOf { get; init; }

    /// <summary>
    /// The rows of each row group, in row order: first the plain heads' rows (group null), then each LoRA adapter's,
    /// then each merged-adapter head's (whose rows run on its private body). Each group's rows are contiguous, so an
    /// adapter's update is added to one row range. Rows are shared only within a group (one row per input and group).
    /// </summary>
    public IReadOnlyList<RowGroup> Groups { get; init; } = [];

    /// <summary>Rows × longest row: what the pass costs in padded tokens.</summary>
    public int PaddedTokens => Rows.Count * Rows.Max(r => r.Length);
}

/// <summary>
/// Splits waiting jobs into body passes: jobs sorted by length (so each pass pads little), cut so that a pass holds
/// at most <c>maxBatchTokens</c> padded tokens and <c>maxBatchRequests</c> jobs; a job is never split, and one job
/// larger than the budget runs alone.
/// </summary>
public static class BatchPlanner
{
    public static IReadOnlyList<PlannedBatch> Plan(IReadOnlyList<InferenceJob> jobs, int maxBatchTokens, int maxBatchRequests) =>
        PassBudget.Cut(jobs.OrderBy(j => j.MaxSequenceLength), j => j.BodyRows, j => j.MaxSequenceLength, maxBatchTokens, maxBatchRequests)
            .Select(Build).ToList();

    private static PlannedBatch Build(List<InferenceJob> jobs)
    {
        var rowOf = new Dictionary<(object? Group, SequenceKey Key), int>();
        var rows = new List<EncodedSequence>();
        var rowsOf = new Dictionary<HeadWork, int[]>();
        var groups = new List<RowGroup>();
        // Plain heads first, then adapters, then merged bodies; each group in order of first appearance.
        var works = jobs.SelectMany(j => j.Work).ToList();
        var order = works.Select(w => w.Slot.RowGroup).Distinct(ReferenceEqualityComparer.Instance)
            .OrderBy(g => g switch { null => 0, LoraAdapter => 1, _ => 2 }).ToList();
        foreach (var group in order)
        {
            var first = rows.Count;
            foreach (var work in works.Where(w => ReferenceEquals(w.Slot.RowGroup, group)))
                rowsOf[work] = RowsFor(work, group, rows, rowOf);
            groups.Add(new RowGroup(group, first, rows.Count - first));
        }
        return new PlannedBatch { Jobs = jobs, Rows = rows, RowsOf = rowsOf, Groups = groups };
    }

    private static int[] RowsFor(HeadWork work, object? group, List<EncodedSequence> rows, Dictionary<(object? Group, SequenceKey Key), int> rowOf)
    {
        var indices = new int[work.Features.Sequences.Count];
        for (var i = 0; i < indices.Length; i++)
        {
            var sequence = work.Features.Sequences[i];
            var key = (group, new SequenceKey(sequence));
            if (!rowOf.TryGetValue(key, out var row))
            {
                row = rows.Count;
                rows.Add(sequence);
                rowOf[key] = row;
            }
            indices[i] = row;
        }
        return indices;
    }
}

/// <summary>Two sequences give the same body output when their token ids and segment ids are equal.</summary>
internal readonly struct SequenceKey(EncodedSequence sequence) : IEquatable<SequenceKey>
{
    private readonly int _hash = Hash(sequence);

    public EncodedSequence Sequence { get; } = sequence;

    public bool Equals(SequenceKey other) =>
        _hash == other._hash
        && Sequence.InputIds.AsSpan().SequenceEqual(other.Sequence.InputIds)
        && Sequence.TokenTypeIds.AsSpan().SequenceEqual(other.Sequence.TokenTypeIds);

    public override bool Equals(object? obj) => obj is SequenceKey other && Equals(other);

    public override int GetHashCode() => _hash;

    private static int Hash(EncodedSequence s)
    {
        var hash = new HashCode();
        foreach (var id in s.InputIds) hash.Add(id);
        foreach (var t in s.TokenTypeIds) hash.Add(t);
        return hash.ToHashCode();
    }
}

/// <summary>
/// Rows <see cref="First"/> .. First+<see cref="Count"/>−1 of a planned batch, which belong to one row group: the plain
/// shared body (<see cref="Key"/> null), a <see cref="LoraAdapter"/> on the shared body, or a merged head's private
/// <see cref="Body.BertBody"/>.
/// </summary>
public sealed record RowGroup(object? Key, int First, int Count);
