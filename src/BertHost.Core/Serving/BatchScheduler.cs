using System.Diagnostics;
using System.Threading.Channels;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Config;
using BertHost.Core.Text;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;
using BertHost.Core.Body;
using BertHost.Core.Backends;
using BertHost.Core.Lora;

namespace BertHost.Core.Serving;

/// <summary>
/// The one place the body runs for serving. Requests of every head wait in one queue, bounded in inputs and tokens
/// (<c>max_queued_inputs</c>, <c>max_queued_tokens</c>: past them a request is refused with 429, never queued); a single worker takes
/// what has arrived (waiting at most <c>max_wait_ms</c> for company), plans body passes by token budget
/// (<see cref="BatchPlanner"/>), runs the body ONCE per pass and hands each head its rows.
/// </summary>
public sealed class BatchScheduler : IAsyncDisposable
{
    private volatile BertBody _body;
    private readonly BatchingSection _options;
    private readonly ServingMetrics _metrics;
    private readonly ILogger _logger;
    private readonly Channel<InferenceJob> _queue = Channel.CreateUnbounded<InferenceJob>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _worker;
    private int _inFlight;
    private long _inFlightTokens;
    private long _bodyPasses;
    private long _bodyRows;

    public BatchScheduler(BertBody body, BatchingSection options, ServingMetrics metrics, ILogger logger)
    {
        _body = body;
        _options = options;
        _metrics = metrics;
        _logger = logger;
        _worker = Task.Run(RunAsync);
        metrics.ObserveQueue(() => (InFlightInputs, InFlightTokens));
    }

    /// <summary>Body passes run so far (a multi-head request for one input costs one).</summary>
    public long BodyPasses => Interlocked.Read(ref _bodyPasses);

    /// <summary>Body rows computed so far, after de-duplication.</summary>
    public long BodyRows => Interlocked.Read(ref _bodyRows);

    /// <summary>Inputs admitted and not finished (waiting or running): what max_queued_inputs bounds.</summary>
    public int InFlightInputs => Volatile.Read(ref _inFlight);

    /// <summary>Serves <paramref name="body"/> from the next pass on; the caller makes sure no pass is running (the engine's drain gate).</summary>
    internal void SwapBody(BertBody body) => _body = body;

    /// <summary>Tokens admitted and not finished: what max_queued_tokens bounds.</summary>
    public long InFlightTokens => Interlocked.Read(ref _inFlightTokens);

    /// <summary>Queues all jobs of a request, or none: a request that does not fit is refused whole.</summary>
    public void Enqueue(IReadOnlyList<InferenceJob> jobs)
    {
        if (_stop.IsCancellationRequested) throw ShuttingDown();
        var tokens = jobs.Sum(j => j.Tokens);
        if (tokens > _options.MaxQueuedTokens)
            throw new ServingException(ServingError.TooMuchWork,
                $"the request is {tokens} tokens after tokenization; the queue holds at most {_options.MaxQueuedTokens} (batching.max_queued_tokens)", "inputs");
        var after = Interlocked.Add(ref _inFlight, jobs.Count);
        var afterTokens = Interlocked.Add(ref _inFlightTokens, tokens);
        if (after > _options.MaxQueuedInputs || afterTokens > _options.MaxQueuedTokens)
        {
            Interlocked.Add(ref _inFlight, -jobs.Count);
            Interlocked.Add(ref _inFlightTokens, -tokens);
            throw new ServingException(ServingError.QueueFull, after > _options.MaxQueuedInputs
                ? $"the queue is full ({_options.MaxQueuedInputs} inputs waiting at most: batching.max_queued_inputs); retry shortly"
                : $"the queue is full ({_options.MaxQueuedTokens} tokens waiting at most: batching.max_queued_tokens); retry shortly");
        }
        foreach (var job in jobs) _queue.Writer.TryWrite(job);
    }

    private static ServingException ShuttingDown() => new(ServingError.Unavailable, "the host is shutting down") { Transient = true };

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        try
        {
            var ranSinceTrim = false;
            while (await WaitForWorkAsync(reader, ranSinceTrim))
            {
                var pending = await CollectAsync(reader);
                foreach (var batch in BatchPlanner.Plan(pending, MaxBatchTokens, _options.MaxBatchRequests))
                {
                    RunBatch(batch);
                    foreach (var job in batch.Jobs) Release(job);
                }
                ranSinceTrim = true;
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _logger.LogCritical(e, "the batch scheduler stopped");
        }
        while (reader.TryRead(out var left))
        {
            Release(left);
            left.Fail(ShuttingDown());
        }
    }

    /// <summary>Padded tokens per body pass: <c>batching.max_batch_tokens</c>, or the served body's device default.</summary>
    internal int MaxBatchTokens => _options.MaxBatchTokens ?? PassBudget.DefaultTokens(_body.Device);

    private void Release(InferenceJob job)
    {
        Interlocked.Decrement(ref _inFlight);
        Interlocked.Add(ref _inFlightTokens, -job.Tokens);
    }

    /// <summary>How long the queue stays empty before the native heap's free memory goes back to the OS.</summary>
    internal static readonly TimeSpan IdleTrimDelay = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Waits for the next job; after passes have run, a wait longer than <see cref="IdleTrimDelay"/> first trims the
    /// native heap (<see cref="NativeHeap.ReleaseFreeMemory"/>), off the path of any request.
    /// </summary>
    private async ValueTask<bool> WaitForWorkAsync(ChannelReader<InferenceJob> reader, bool ranSinceTrim)
    {
        if (ranSinceTrim)
        {
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            idle.CancelAfter(IdleTrimDelay);
            try
            {
                return await reader.WaitToReadAsync(idle.Token);
            }
            catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
            {
                NativeHeap.ReleaseFreeMemory();
            }
        }
        return await reader.WaitToReadAsync(_stop.Token);
    }

    /// <summary>Takes the first waiting job and whatever joins it within max_wait_ms, up to the batch limits.</summary>
    private async Task<List<InferenceJob>> CollectAsync(ChannelReader<InferenceJob> reader)
    {
        var pending = new List<InferenceJob>();
        long tokens = 0;
        long deadline = 0;
        var maxTokens = MaxBatchTokens;
        while (pending.Count < _options.MaxBatchRequests && tokens < maxTokens)
        {
            if (reader.TryRead(out var job))
            {
                if (pending.Count == 0) deadline = job.EnqueuedAt + (long)(_options.MaxWaitMs * Stopwatch.Frequency / 1000.0);
                pending.Add(job);
                tokens += (long)job.BodyRows * job.MaxSequenceLength;
                continue;
            }
            var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (pending.Count > 0 && remaining <= TimeSpan.Zero) break;
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            if (pending.Count > 0) wait.CancelAfter(remaining);
            try
            {
                if (!await reader.WaitToReadAsync(wait.Token)) break;
            }
            catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
            {
                break;
            }
        }
        return pending;
    }

    private void RunBatch(PlannedBatch planned)
    {
        var now = Stopwatch.GetTimestamp();
        var jobs = new List<InferenceJob>();
        foreach (var job in planned.Jobs)
        {
            if (job.CancellationToken.IsCancellationRequested) job.Cancel();
            else jobs.Add(job);
            _metrics.RecordQueueTime(Stopwatch.GetElapsedTime(job.EnqueuedAt, now).TotalSeconds);
            ServingTelemetry.Source.StartActivity(ServingTelemetry.QueueWait, ActivityKind.Internal, job.Parent, startTime: job.EnqueuedUtc)?.Dispose();
        }
        if (jobs.Count == 0) return;
        var batch = jobs.Count == planned.Jobs.Count ? planned : BatchPlanner.Plan(jobs, int.MaxValue, int.MaxValue)[0];
        try
        {
            RunBodyAndHeads(batch);
            foreach (var job in jobs) job.Complete();
        }
        catch (Exception e)
        {
            _logger.LogError(e, "body pass failed for {Rows} rows", batch.Rows.Count);
            var failure = new ServingException(ServingError.Unavailable, $"the body pass failed: {e.Message}", inner: e);
            foreach (var job in jobs) job.Fail(failure);
        }
    }

    /// <summary>
    /// One pass of the shared body over the rows of the plain heads and of every LoRA adapter (the base projections run
    /// once over all of them; each adapter's update goes to its own row range, see <see cref="LoraPass"/>), then one pass
    /// of each merged head's private body over its rows; each head reads its rows of the pass they ran in.
    /// </summary>
    private void RunBodyAndHeads(PlannedBatch batch)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var works = batch.Jobs.SelectMany(j => j.Work).ToList();
        var groups = batch.Groups.Count > 0 ? batch.Groups : [new RowGroup(null, 0, batch.Rows.Count)];
        var shared = groups.Where(g => g.Key is null or LoraAdapter).ToList();
        var passes = new List<(BertBody Body, int First, int Count, List<LoraSegment> Segments)>();
        if (shared.Count > 0)
        {
            var first = shared.Min(g => g.First);
            passes.Add((_body, first, shared.Sum(g => g.Count),
                shared.Where(g => g.Key is LoraAdapter).Select(g => new LoraSegment((LoraAdapter)g.Key!, g.First - first, g.Count)).ToList()));
        }
        foreach (var g in groups.Where(g => g.Key is BertBody)) passes.Add(((BertBody)g.Key!, g.First, g.Count, []));

        foreach (var (body, first, count, segments) in passes)
        {
            if (count == 0) continue;
            var passWorks = works.Where(w => ReferenceEquals(body, _body) ? w.Slot.MergedBody is null : ReferenceEquals(w.Slot.MergedBody, body)).ToList();
            var needHidden = passWorks.Any(w => w.Slot.Head!.Requirements.NeedsHiddenStates);
            var rows = batch.Rows.Skip(first).Take(count).ToList();
            var padded = PaddedBatch.Create(rows, body.Tokenizer.PadTokenId);
            using var pass = ServingTelemetry.Source.StartActivity(ServingTelemetry.BodyPass, ActivityKind.Internal, parentContext: default,
                links: batch.Jobs.Where(j => j.Parent != default).Select(j => new ActivityLink(j.Parent)).ToList());
            pass?.SetTag("berthost.rows", rows.Count);
            pass?.SetTag("berthost.padded_tokens", padded.BatchSize * padded.SequenceLength);
            if (segments.Count > 0) pass?.SetTag("berthost.adapters", segments.Count);

            var start = Stopwatch.GetTimestamp();
            Abstractions.BodyOutput output;
            using (segments.Count > 0 ? LoraPass.Enter(body.Model, segments) : null)
                output = body.ForwardSkippingPadding(padded, needHidden);
            using (output)
            {
                var bodySeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                Interlocked.Increment(ref _bodyPasses);
                Interlocked.Add(ref _bodyRows, rows.Count);
                _metrics.RecordBatch(rows.Count, rows.Sum(r => r.Length), padded.BatchSize * padded.SequenceLength, bodySeconds);
                foreach (var group in passWorks.GroupBy(w => w.Slot))
                    RunHead(group.Key, group.ToList(), batch, output, first);
            }
        }
    }

    private void RunHead(HeadSlot slot, List<HeadWork> works, PlannedBatch batch, Abstractions.BodyOutput output, int firstRow)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var scope = NewDisposeScope();
            var rows = works.SelectMany(w => batch.RowsOf[w]).Select(r => r - firstRow).ToArray();
            using var slice = BodyOutputRows.Select(output, rows);
            var headBatch = new HeadBatch(works.Select(w => w.Features).ToList(), _body.Device);
            var head = slot.Head!;
            Tensor logits;
            using (var forward = ServingTelemetry.Source.StartActivity(ServingTelemetry.HeadForward))
            {
                forward?.SetTag("berthost.head", slot.Name);
                forward?.SetTag("berthost.rows", rows.Length);
                logits = head.Forward(slice, headBatch);
            }
            IReadOnlyList<System.Text.Json.Nodes.JsonNode> outputs;
            using (var decode = ServingTelemetry.Source.StartActivity(ServingTelemetry.Decode))
            {
                decode?.SetTag("berthost.head", slot.Name);
                outputs = head.Decode(logits, headBatch);
            }
            if (outputs.Count != works.Count)
                throw new InvalidOperationException($"Decode returned {outputs.Count} outputs for {works.Count} inputs");
            for (var i = 0; i < works.Count; i++) works[i].Output = outputs[i];
        }
        catch (Exception e)
        {
            _logger.LogError(e, "head {Head} failed while serving", slot.Name);
            slot.RecordServingError(e.Message);
            var failure = new ServingException(ServingError.Unavailable, $"head '{slot.Name}' failed while serving: {e.Message}", inner: e);
            foreach (var work in works) work.Failure = failure;
        }
        _metrics.RecordHeadTime(slot.Name, works.Count, Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _stop.CancelAsync();
        await _worker;
        _stop.Dispose();
    }
}
