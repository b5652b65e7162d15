using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using BertHost.Abstractions.Heads;
using BertHost.Core.Serving;
using Microsoft.Extensions.Logging;
using BertHost.Core.Checkpoints;

namespace BertHost.Core.Jobs;

/// <summary>
/// Runs jobs in the background of the serving host: a queue, <c>jobs.max_concurrent</c> workers, a cancellation
/// token per job, progress written into the job's record (at most every <see cref="PersistInterval"/>, and at every
/// epoch end and state change), failures captured into the record (a failing job never takes the host down).
/// At start it loads the history from the jobs directory; jobs found queued or running (the host was stopped or
/// killed) are marked interrupted and, with <c>jobs.resume_interrupted</c>, queued again to resume from their checkpoint.
/// </summary>
public sealed class JobRunner : IAsyncDisposable
{
    private readonly object _lock = new();
    private readonly Dictionary<string, JobRecord> _records = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CancellationTokenSource> _running = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _persistedAt = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IJobWork> _kinds;
    private readonly Channel<string> _queue = Channel.CreateUnbounded<string>();
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _promotions = new(1, 1);
    private readonly JobStore _store;
    private readonly JobEnvironment _environment;
    private readonly ServingMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly List<Task> _workers = [];
    private bool _frozen;

    private JobRunner(JobEnvironment environment, IEnumerable<IJobWork> kinds, ServingMetrics? metrics)
    {
        _environment = environment;
        _metrics = metrics;
        _logger = environment.Loggers.CreateLogger<JobRunner>();
        _store = new JobStore(environment.Settings.Directory, _logger);
        _kinds = kinds.ToDictionary(k => k.Kind, StringComparer.Ordinal);
    }

    /// <summary>How often progress is written to a running job's record at most (epoch ends and state changes are written at once).</summary>
    public TimeSpan PersistInterval { get; init; } = TimeSpan.FromSeconds(2);

    public JobStore Store => _store;

    /// <summary>Test hook: called with (job id, epoch) on the job's thread after each epoch is recorded.</summary>
    internal Action<string, int>? EpochEnded { get; set; }

    /// <summary>Loads the job history of the engine's deployment and starts the workers.</summary>
    /// <param name="kinds">The job kinds offered; default: <see cref="TrainJobWork"/> and <see cref="PretrainJobWork"/>.</param>
    public static JobRunner Start(InferenceEngine engine, ILoggerFactory loggers, ServingMetrics? metrics = null, IEnumerable<IJobWork>? kinds = null)
    {
        var settings = engine.Config.Jobs;
        var environment = new JobEnvironment
        {
            Engine = engine,
            Settings = settings,
            BaseDirectory = Path.GetDirectoryName(engine.Config.SourcePath)!,
            Loggers = loggers,
        };
        var runner = new JobRunner(environment, kinds ?? [new TrainJobWork(), new PretrainJobWork()], metrics);
        runner.Recover();
        for (var i = 0; i < settings.MaxConcurrent; i++) runner._workers.Add(Task.Run(runner.WorkAsync));
        return runner;
    }

    private void Recover()
    {
        var resume = _environment.Settings.ResumeInterrupted;
        foreach (var record in _store.LoadAll())
        {
            _records[record.Id] = record;
            if (record.State is JobStates.Queued or JobStates.Running)
            {
                record.Interruptions++;
                record.State = JobStates.Interrupted;
                _logger.LogWarning("job {Job} was {State} when the host stopped", record.Id, record.State);
            }
            if (record.State == JobStates.Interrupted && resume && _kinds.ContainsKey(record.Kind))
            {
                record.State = JobStates.Queued;
                _queue.Writer.TryWrite(record.Id);
                _logger.LogInformation("job {Job} queued again; it resumes from its last checkpoint", record.Id);
            }
            Persist(record);
        }
        UpdateMetrics();
    }

    // ---- API -----------------------------------------------------------------------------------------------------

    /// <summary>Checks and queues a submission; returns the new job's record.</summary>
    public JsonObject Submit(JsonElement body)
    {
        var request = new JobRequest(body);
        var kind = request.String("kind") ?? TrainJobWork.KindName;
        if (!_kinds.TryGetValue(kind, out var work))
            throw new ServingException(ServingError.InvalidInput, $"unknown job kind '{kind}' (kinds: {string.Join(", ", _kinds.Keys.Order(StringComparer.Ordinal))})", "kind");
        request.CheckKnown(["kind", .. work.Fields]);
        var created = DateTimeOffset.UtcNow;
        var id = $"{created:yyyyMMdd-HHmmss}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        var record = work.Prepare(request, _environment, new JobIdentity(id, _store.FolderOf(id), created));
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_stopping.IsCancellationRequested, this);
            _records[id] = record;
            Persist(record);
            UpdateMetrics();
        }
        _queue.Writer.TryWrite(id);
        _logger.LogInformation("job {Job} ({Kind}, head {Head}) queued", id, kind, record.Head);
        return Snapshot(id)!;
    }

    /// <summary>Every job, newest first; only those in <paramref name="state"/> when given.</summary>
    public IReadOnlyList<JsonObject> List(string? state)
    {
        if (state is not null && !JobStates.All.Contains(state))
            throw new ServingException(ServingError.BadRequest, $"state must be one of {string.Join(", ", JobStates.All)}, got '{state}'", "state");
        lock (_lock)
            return _records.Values.Where(r => state is null || r.State == state)
                .OrderByDescending(r => r.Created).ThenByDescending(r => r.Id, StringComparer.Ordinal)
                .Select(r => r.ToJson()).ToList();
    }

    /// <summary>The job's record, or null.</summary>
    public JsonObject? Snapshot(string id)
    {
        lock (_lock) return _records.TryGetValue(id, out var r) ? r.ToJson() : null;
    }

    /// <summary>Cancels a queued or running job (a running one stops at its next batch); returns its record and whether it has stopped already.</summary>
    public (JsonObject Record, bool Stopped) Cancel(string id)
    {
        lock (_lock)
        {
            var record = Find(id);
            switch (record.State)
            {
                case JobStates.Queued or JobStates.Interrupted:
                    record.CancelRequested = true;
                    record.State = JobStates.Cancelled;
                    record.Finished = DateTimeOffset.UtcNow;
                    DeleteCheckpoint(record);
                    Persist(record);
                    UpdateMetrics();
                    return (record.ToJson(), true);
                case JobStates.Running:
                    record.CancelRequested = true;
                    Persist(record);
                    _running[id].Cancel();
                    return (record.ToJson(), false);
                default:
                    throw new ServingException(ServingError.Conflict, $"job {id} has already {Past(record.State)}; only queued or running jobs can be cancelled");
            }
        }
    }

    /// <summary>Serves the output of a succeeded job that was not promoted (e.g. with <c>body_swap: manual</c>).</summary>
    public async Task<JsonObject> PromoteAsync(string id)
    {
        JobRecord record;
        lock (_lock)
        {
            record = Find(id);
            if (record.State != JobStates.Succeeded)
                throw new ServingException(ServingError.Conflict, $"job {id} is {record.State}; only a succeeded job can be promoted");
            if (record.Promoted)
                throw new ServingException(ServingError.Conflict, $"job {id} is already promoted");
        }
        await PromoteCoreAsync(record);
        return Snapshot(id)!;
    }

    private JobRecord Find(string id) =>
        _records.TryGetValue(id, out var record) ? record : throw new ServingException(ServingError.NotFound, $"no job with id '{id}'");

    private static string Past(string state) => state switch
    {
        JobStates.Succeeded => "succeeded",
        JobStates.Failed => "failed",
        _ => "been cancelled",
    };

    // ---- work ----------------------------------------------------------------------------------------------------

    private async Task WorkAsync()
    {
        try
        {
            await foreach (var id in _queue.Reader.ReadAllAsync(_stopping.Token))
                await RunAsync(id);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    private async Task RunAsync(string id)
    {
        JobRecord record;
        CancellationTokenSource cancel;
        lock (_lock)
        {
            record = _records[id];
            if (record.State != JobStates.Queued) return;
            record.State = JobStates.Running;
            record.Started = DateTimeOffset.UtcNow;
            record.Error = null;
            cancel = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            _running[id] = cancel;
            Persist(record);
            UpdateMetrics();
        }
        var work = _kinds[record.Kind];
        var context = Context(record);
        var clock = Stopwatch.StartNew();
        try
        {
            // The work is synchronous and long: it gets a thread of its own, not one of the pool's.
            await Task.Factory.StartNew(() => work.Run(context, cancel.Token), cancel.Token, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            if (record.Promote) await PromoteCoreAsync(record);
            DeleteCheckpoint(record);
            Finish(record, JobStates.Succeeded, null);
            _logger.LogInformation("job {Job} succeeded in {Seconds:F1} s{Promoted}", id, clock.Elapsed.TotalSeconds, record.Promoted ? " and was promoted" : "");
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            var interrupted = _stopping.IsCancellationRequested && !record.CancelRequested;
            if (interrupted) context.Update(r => r.Interruptions++);
            else DeleteCheckpoint(record);
            Finish(record, interrupted ? JobStates.Interrupted : JobStates.Cancelled, null);
            _logger.LogInformation("job {Job} {State}", id, interrupted ? "interrupted (the host is stopping)" : "cancelled");
        }
        catch (Exception e)
        {
            var why = e is TrainingDataException or InvalidDataException or IOException or ArgumentException or HeadConfigurationException or ServingException
                    or Checkpoints.CheckpointException or Bert.BertConfigException
                ? e.Message
                : $"{e.GetType().Name}: {e.Message}";
            _logger.LogError(e, "job {Job} failed: {Reason}", id, why);
            Finish(record, JobStates.Failed, why);
        }
        finally
        {
            lock (_lock) _running.Remove(id);
            cancel.Dispose();
        }
    }

    /// <summary>A finished job's checkpoint (weights and optimizer moments, several times the model's size) is not needed any more; a failed job keeps it for inspection.</summary>
    private void DeleteCheckpoint(JobRecord record)
    {
        var folder = Path.Combine(record.Folder, TrainJobWork.CheckpointFolder);
        try
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning("job {Job}: its checkpoint {Folder} cannot be deleted: {Reason}", record.Id, folder, e.Message);
        }
    }

    private void Finish(JobRecord record, string state, string? error)
    {
        lock (_lock)
        {
            record.State = state;
            record.Error = error;
            if (state != JobStates.Interrupted) record.Finished = DateTimeOffset.UtcNow;
            Persist(record);
            UpdateMetrics();
        }
    }

    /// <summary>One promotion at a time; a refused promotion leaves the job succeeded with <see cref="JobRecord.PromotionError"/>.</summary>
    private async Task PromoteCoreAsync(JobRecord record)
    {
        await _promotions.WaitAsync();
        try
        {
            await _kinds[record.Kind].PromoteAsync(Context(record));
            Context(record).Update(r =>
            {
                r.Promoted = true;
                r.PromotedAt = DateTimeOffset.UtcNow;
                r.PromotionError = null;
            }, persistNow: true);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var why = e is ServingException or Checkpoints.BodyLoadException or InvalidOperationException ? e.Message : $"{e.GetType().Name}: {e.Message}";
            _logger.LogError(e, "job {Job} could not be promoted: {Reason}", record.Id, why);
            Context(record).Update(r => r.PromotionError = why, persistNow: true);
            if (record.State == JobStates.Succeeded) throw new ServingException(ServingError.Conflict, $"job {record.Id} cannot be promoted: {why}");
        }
        finally
        {
            _promotions.Release();
        }
    }

    private JobContext Context(JobRecord record) => new(record, _environment, (change, persistNow) =>
    {
        lock (_lock)
        {
            change(record);
            var now = Stopwatch.GetTimestamp();
            if (persistNow || !_persistedAt.TryGetValue(record.Id, out var at) || Stopwatch.GetElapsedTime(at, now) >= PersistInterval)
                Persist(record);
        }
    })
    {
        EpochEnded = EpochEnded is { } hook ? epoch => hook(record.Id, epoch) : null,
    };

    /// <summary>Writes the record (callers hold the lock); a write failure is logged, never thrown into the job.</summary>
    private void Persist(JobRecord record)
    {
        if (_frozen) return;
        try
        {
            _store.Save(record);
            _persistedAt[record.Id] = Stopwatch.GetTimestamp();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogError("job {Job}: its record cannot be written: {Reason}", record.Id, e.Message);
        }
    }

    private void UpdateMetrics()
    {
        if (_metrics is null) return;
        lock (_lock)
            _metrics.SetJobs(JobStates.All.ToDictionary(s => s, s => _records.Values.Count(r => r.State == s)));
    }

    /// <summary>
    /// Stops like a killed process would (tests): nothing more reaches the records on disk, running jobs stop at their
    /// next batch, and the workers end.
    /// </summary>
    internal async Task AbandonAsync()
    {
        lock (_lock) _frozen = true;
        await DisposeAsync();
    }

    /// <summary>Stops the workers: running jobs stop at their next batch and are recorded interrupted (a restart resumes them).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested) return;
        _queue.Writer.TryComplete();
        await _stopping.CancelAsync();
        await Task.WhenAll(_workers);
        _stopping.Dispose();
    }
}
