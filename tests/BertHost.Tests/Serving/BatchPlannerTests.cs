using System.Text.Json;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using BertHost.Core.Serving;

namespace BertHost.Tests.Serving;

public class BatchPlannerTests
{
    private static EncodedSequence Sequence(params int[] ids) => new()
    {
        InputIds = ids,
        Tokens = ids.Select(i => i.ToString()).ToArray(),
        TokenTypeIds = new int[ids.Length],
        Offsets = new (int, int)[ids.Length],
        WordIds = new int?[ids.Length],
        SequenceIds = new int?[ids.Length],
        SpecialTokensMask = new bool[ids.Length],
    };

    private static readonly HeadSlot SlotA = new("a", "k", null, HeadStates.Ready, null, null, null);
    private static readonly HeadSlot SlotB = new("b", "k", null, HeadStates.Ready, null, null, null);

    private static InferenceJob Job(params EncodedSequence[][] perHead) =>
        new(perHead.Select((seqs, i) => new HeadWork(i == 0 ? SlotA : SlotB, new HeadFeatures { Sequences = seqs })).ToList(), CancellationToken.None);

    [Fact]
    public void Jobs_are_sorted_by_length_and_cut_by_the_padded_token_budget()
    {
        var jobs = new[] { Job([Sequence(1, 2, 3, 4, 5, 6)]), Job([Sequence(1, 2)]), Job([Sequence(1, 2, 3)]), Job([Sequence(7, 8, 9, 10, 11, 12)]) };
        // Budget 12 padded tokens: [2,3] → 2 rows × 3 = 6; adding a 6-token row gives 3 × 6 = 18 > 12, so it starts a new pass.
        var batches = BatchPlanner.Plan(jobs, maxBatchTokens: 12, maxBatchRequests: 10);
        Assert.Equal(2, batches.Count);
        Assert.Equal([jobs[1], jobs[2]], batches[0].Jobs);
        Assert.Equal([jobs[0], jobs[3]], batches[1].Jobs);
        Assert.Equal(6, batches[0].PaddedTokens);
        Assert.Equal(12, batches[1].PaddedTokens);
    }

    [Fact]
    public void The_budget_counts_the_rows_a_pass_computes_not_every_heads_copy_of_them()
    {
        // Two heads of the same text: one body row of 4 tokens per job, so a budget of 8 takes two jobs, not one.
        var jobs = Enumerable.Range(0, 4).Select(i => Job([Sequence(1, 2, 3, 4 + i)], [Sequence(1, 2, 3, 4 + i)])).ToArray();
        Assert.All(jobs, j => Assert.Equal((2, 1), (j.RowCount, j.BodyRows)));
        var batches = BatchPlanner.Plan(jobs, maxBatchTokens: 8, maxBatchRequests: 10);
        Assert.Equal([2, 2], batches.Select(b => b.Jobs.Count));
        Assert.All(batches, b => Assert.Equal(8, b.PaddedTokens));
        // Different sequences of one job still count one row each.
        Assert.Equal(2, Job([Sequence(1, 2)], [Sequence(1, 3)]).BodyRows);
    }

    [Fact]
    public void The_request_limit_cuts_passes_and_an_oversized_job_runs_alone()
    {
        var jobs = Enumerable.Range(0, 5).Select(_ => Job([Sequence(1, 2)])).Append(Job([Sequence(Enumerable.Range(0, 50).ToArray())])).ToArray();
        var batches = BatchPlanner.Plan(jobs, maxBatchTokens: 20, maxBatchRequests: 2);
        Assert.Equal([2, 2, 1, 1], batches.Select(b => b.Jobs.Count));
        Assert.Equal(50, batches[^1].Rows.Single().Length);
    }

    [Fact]
    public void Identical_sequences_of_several_heads_share_one_body_row_and_a_job_is_never_split()
    {
        var text = Sequence(2, 10, 11, 3);
        var multi = Job([text], [Sequence(2, 10, 11, 3)]);                 // two heads, same tokens
        var choices = Job([Sequence(2, 5, 3), Sequence(2, 6, 3), Sequence(2, 7, 3)]);   // one head, three rows
        var batch = Assert.Single(BatchPlanner.Plan([multi, choices], maxBatchTokens: 1000, maxBatchRequests: 10));
        Assert.Equal(4, batch.Rows.Count);
        Assert.Equal(batch.RowsOf[multi.Work[0]], batch.RowsOf[multi.Work[1]]);
        Assert.Equal(3, batch.RowsOf[choices.Work[0]].Distinct().Count());
    }

    [Fact]
    public void Different_segment_ids_are_different_rows()
    {
        var a = Sequence(2, 10, 3);
        var b = new EncodedSequence
        {
            InputIds = a.InputIds, Tokens = a.Tokens, TokenTypeIds = [0, 1, 1], Offsets = a.Offsets, WordIds = a.WordIds,
            SequenceIds = a.SequenceIds, SpecialTokensMask = a.SpecialTokensMask,
        };
        var batch = Assert.Single(BatchPlanner.Plan([Job([a]), Job([b])], 1000, 10));
        Assert.Equal(2, batch.Rows.Count);
    }
}
