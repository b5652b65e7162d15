using System.Text.Json;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Config;
using BertHost.Core.Serving;
using BertHost.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using BertHost.Core.Body;

namespace BertHost.Tests.Serving;

public sealed class BatchSchedulerTests : IAsyncLifetime
{
    private static readonly JsonElement NoParameters = JsonDocument.Parse("{}").RootElement;
    private BertBody _body = null!;

    public Task InitializeAsync()
    {
        _body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        _body.Dispose();
        return Task.CompletedTask;
    }

    private BatchScheduler Scheduler(BatchingSection? options = null) =>
        new(_body, options ?? new BatchingSection { MaxWaitMs = 20 }, new ServingMetrics(), NullLogger.Instance);

    private static JsonElement Input(string text) => JsonSerializer.SerializeToElement(new { text });

    private static InferenceJob Job(CancellationToken token, string text, params HeadSlot[] slots) =>
        new(slots.Select(s => new HeadWork(s, s.Head!.Encode(Input(text), NoParameters))).ToList(), token);

    private static float[] Vector(HeadWork work) => work.Output!.AsArray().Select(v => v!.GetValue<float>()).ToArray();

    /// <summary>What the head gives for the text alone, in a batch of one.</summary>
    private float[] Alone(VectorHead head, string text)
    {
        var features = head.Encode(Input(text), NoParameters);
        using var output = _body.Forward(Core.Text.PaddedBatch.Create(features.Sequences, _body.Tokenizer.PadTokenId));
        var batch = new HeadBatch([features], _body.Device);
        using var logits = head.Forward(output, batch);
        return head.Decode(logits, batch)[0].AsArray().Select(v => v!.GetValue<float>()).ToArray();
    }

    [Fact]
    public async Task Concurrent_requests_to_several_heads_get_the_results_of_single_requests()
    {
        using var cls = new VectorHead("cls", _body.Tokenizer);
        using var mean = new VectorHead("mean", _body.Tokenizer, mean: true);
        var slots = new[] { VectorHead.Slot(cls), VectorHead.Slot(mean) };
        string[] texts = ["the dog", "the old man went to the city with his dog", "she said no", "we will see what happens", "he went to the city"];
        await using var scheduler = Scheduler();

        var jobs = Enumerable.Range(0, 40).Select(i => Job(CancellationToken.None, texts[i % texts.Length], slots[i % 2])).ToList();
        await Task.WhenAll(jobs.Select(j => Task.Run(() => scheduler.Enqueue([j]))));
        await Task.WhenAll(jobs.Select(j => j.Completion));

        Assert.True(scheduler.BodyPasses < 40, $"expected batching, got {scheduler.BodyPasses} passes for 40 jobs");
        for (var i = 0; i < jobs.Count; i++)
        {
            var head = i % 2 == 0 ? cls : mean;
            var expected = Alone(head, texts[i % texts.Length]);
            var actual = Vector(jobs[i].Work[0]);
            Assert.Equal(expected.Length, actual.Length);
            Assert.InRange(expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max(), 0, 1e-5);
        }
    }

    [Fact]
    public async Task One_input_for_several_heads_costs_one_body_pass_and_one_row()
    {
        using var a = new VectorHead("a", _body.Tokenizer);
        using var b = new VectorHead("b", _body.Tokenizer, mean: true);
        using var c = new VectorHead("c", _body.Tokenizer);
        await using var scheduler = Scheduler(new BatchingSection { MaxWaitMs = 0 });
        var job = Job(CancellationToken.None, "the old man", VectorHead.Slot(a), VectorHead.Slot(b), VectorHead.Slot(c));
        scheduler.Enqueue([job]);
        await job.Completion;
        Assert.Equal(1, scheduler.BodyPasses);
        Assert.Equal(1, scheduler.BodyRows);
        Assert.All(job.Work, w => Assert.NotNull(w.Output));
        Assert.Equal(Vector(job.Work[0]), Vector(job.Work[2]));
    }

    [Fact]
    public async Task A_head_that_throws_fails_its_own_work_only()
    {
        using var good = new VectorHead("good", _body.Tokenizer);
        using var bad = new VectorHead("bad", _body.Tokenizer, failInForward: true);
        var badSlot = VectorHead.Slot(bad);
        await using var scheduler = Scheduler(new BatchingSection { MaxWaitMs = 0 });
        var job = Job(CancellationToken.None, "the dog", VectorHead.Slot(good), badSlot);
        scheduler.Enqueue([job]);
        await job.Completion;
        Assert.NotNull(job.Work[0].Output);
        var failure = Assert.IsType<ServingException>(job.Work[1].Failure);
        Assert.Equal(ServingError.Unavailable, failure.Error);
        Assert.Contains("head 'bad' failed while serving: boom", failure.Message);
        Assert.Equal(1, badSlot.ServingErrors);

        // The scheduler keeps serving afterwards.
        var next = Job(CancellationToken.None, "she said no", VectorHead.Slot(good));
        scheduler.Enqueue([next]);
        await next.Completion;
        Assert.NotNull(next.Work[0].Output);
    }

    [Fact]
    public async Task A_full_queue_refuses_the_whole_request()
    {
        using var head = new VectorHead("h", _body.Tokenizer);
        var slot = VectorHead.Slot(head);
        // A long wait keeps the first job in the queue while the next request arrives.
        await using var scheduler = Scheduler(new BatchingSection { MaxQueuedInputs = 3, MaxWaitMs = 200, MaxBatchRequests = 64 });
        var first = Enumerable.Range(0, 3).Select(_ => Job(CancellationToken.None, "the dog", slot)).ToArray();
        scheduler.Enqueue(first);
        var error = Assert.Throws<ServingException>(() => scheduler.Enqueue([Job(CancellationToken.None, "the dog", slot), Job(CancellationToken.None, "the dog", slot)]));
        Assert.Equal(ServingError.QueueFull, error.Error);
        Assert.Contains("queue is full", error.Message);
        await Task.WhenAll(first.Select(j => j.Completion));
    }

    [Fact]
    public async Task Cancelled_jobs_are_not_run()
    {
        using var head = new VectorHead("h", _body.Tokenizer);
        await using var scheduler = Scheduler(new BatchingSection { MaxWaitMs = 100 });
        using var cts = new CancellationTokenSource();
        var job = Job(cts.Token, "the dog", VectorHead.Slot(head));
        scheduler.Enqueue([job]);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => job.Completion);
        Assert.Equal(0, head.ForwardCalls);
    }
}
