using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using BertHost.Abstractions.Heads;
using BertHost.Core.Checkpoints;
using BertHost.Core.Serving;
using Microsoft.Extensions.Logging;

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
    private readonly ILogger _audit;
    private readonly List<Task> _workers = [];
    private bool _frozen;

    private JobRunner(JobEnvironment environment, IEnumerable<IJobWork> kinds, ServingMetrics? metrics)
    {
        _environment = environment;
        _metrics = metrics;
        _logger = environment.Loggers.CreateLogger<JobRunner>();
        _audit = environment.Loggers.CreateLogger(AuditCategory);
        _store = new JobStore(environment.Settings.Directory, _logger);
        _kinds = kinds.ToDictionary(k => k.Kind, StringComparer.Ordinal);
    }

    /// <summary>The log category of audit lines: who submitted, cancelled and promoted which job, and what started serving.</summary>
    public const string AuditCategory = "BertHost.Audit";

    /// <summary>How often progress is written to a running job's record at most (epoch ends and state changes are written at once).</summary>
    public TimeSpan PersistInterval { get; init; } = TimeSpan.FromSeconds(2);

    public JobStore Store => _store;

    /// <summary>The deployment's <c>jobs:</c> section.</summary>
    public Config.JobsSection Settings => _environment.Settings;

    /// <summary>Test hook: called with (job id, epoch) on the job's thread after each epoch is recorded.</summary>
    internal Action<string, int>? EpochEnded { get; set; }

    /// <summary>Loads the job history of the engine's deployment and starts the workers.</summary>
    /// <param name="kinds">The job kinds offered; default: <see cref="TrainJobWork"/> and <see cref="PretrainJobWork"/>.</param>
    public static JobRunner Start(IServedModels engine, ILoggerFactory loggers, ServingMetrics? metrics = null, IEnumerable<IJobWork>? kinds = null)
    {
        var settings = engine.Config.Jobs;
        var environment = new JobEnvironment
        {
            Engine = engine,
            Settings = settings,
            Loggers = loggers,
        };
        var runner = new JobRunner(environment, kinds ?? [new TrainJobWork(), new PretrainJobWork()], metrics);
        runner.Recover();
        for (var i = 0; i < settings.MaxConcurrent; i++) runner._workers.Add(Task.Run(runner.WorkAsync));
        return runner;
    }

    private void Recover()
    {
        TempFiles.RemoveLeftovers(_store.Directory, _logger);
        _store.RemoveAbandonedSubmissions();
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

    /// <summary>
    /// Starts a submission: the new job's id and folder, where uploaded data is stored before <see cref="Submit(JobSubmission, JsonElement, IReadOnlyDictionary{string, List{UploadedFile}}?)"/>
    /// checks it. Disposing a submission that was not queued deletes its folder.
    /// </summary>
    /// <param name="submittedBy">The API key's id, recorded in the job and the audit log.</param>
    /// <param name="mayPromote">Whether the submitter may ask for <c>promote: true</c> (the admin scope).</param>
    public JobSubmission BeginSubmission(string? submittedBy = null, bool mayPromote = true)
    {
        var created = DateTimeOffset.UtcNow;
        var id = $"{created:yyyyMMdd-HHmmss}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        return new JobSubmission(new JobIdentity(id, _store.FolderOf(id), created, submittedBy, mayPromote));
    }

    /// <summary>Checks and queues a submission without uploads; returns the new job's record.</summary>
    public JsonObject Submit(JsonElement body, string? submittedBy = null, bool mayPromote = true)
    {
        using var submission = BeginSubmission(submittedBy, mayPromote);
        return Submit(submission, body);
    }

    /// <summary>Checks and queues a submission (its fields and the files uploaded with it, by field); returns the new job's record.</summary>
    public JsonObject Submit(JobSubmission submission, JsonElement body, IReadOnlyDictionary<string, List<UploadedFile>>? uploads = null)
    {
        var request = new JobRequest(body, uploads: uploads);
        var kind = request.String("kind") ?? TrainJobWork.KindName;
        if (!_kinds.TryGetValue(kind, out var work))
            throw new ServingException(ServingError.InvalidInput, $"unknown job kind '{kind}' (kinds: {string.Join(", ", _kinds.Keys.Order(StringComparer.Ordinal))})", "kind");
        request.CheckKnown(["kind", .. work.Fields]);
        var identity = submission.Identity;
        var id = identity.Id;
        var record = work.Prepare(request, _environment, identity);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_stopping.IsCancellationRequested, this);
            _records[id] = record;
            Persist(record);
            UpdateMetrics();
        }
        submission.Queued = true;
        _queue.Writer.TryWrite(id);
        _logger.LogInformation("job {Job} ({Kind}, head {Head}) queued", id, kind, record.Head);
        _audit.LogInformation("key {Key} submitted job {Job}: {Kind} {Mode} of {Heads} on {Data}{Promote}", Who(identity.SubmittedBy), id, kind,
            record.Mode ?? "", record.Heads is { } hs ? string.Join(", ", hs) : record.Head ?? "the body",
            string.Join(", ", record.Data.Select(d => $"{d.Role} '{d.Name}' ({d.Source}, sha256 {d.Sha256})")), record.Promote ? ", to serve when it succeeds" : "");
        return Snapshot(id)!;
    }

    private static string Who(string? key) => key ?? "(anonymous)";

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
    public (JsonObject Record, bool Stopped) Cancel(string id, string? by = null)
    {
        lock (_lock)
        {
            var record = Find(id);
            if (!JobStates.IsFinished(record.State)) _audit.LogInformation("key {Key} cancelled job {Job} ({State})", Who(by), id, record.State);
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
    public async Task<JsonObject> PromoteAsync(string id, string? by = null)
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
        await PromoteCoreAsync(record, by);
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
            if (record.Promote) await PromoteCoreAsync(record, null);
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
            var why = ClientMessage(record, e);
            _logger.LogError(e, "job {Job} failed: {Reason}", id, e.Message);
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
    /// <param name="by">The key that asked for it; null when the job promotes itself (<c>promote</c>, or the deployment's auto settings).</param>
    private async Task PromoteCoreAsync(JobRecord record, string? by)
    {
        await _promotions.WaitAsync();
        try
        {
            await _kinds[record.Kind].PromoteAsync(Context(record));
            Context(record).Update(r =>
            {
                r.Promoted = true;
                r.PromotedAt = DateTimeOffset.UtcNow;
                r.PromotedBy = by;
                r.PromotionError = null;
            }, persistNow: true);
            var heads = record.Heads ?? (record.Head is null ? [] : [record.Head]);
            var what = record.Mode == "head" ? $"head {record.Head}" : heads.Count > 0 ? $"a new body with heads {string.Join(", ", heads)}" : "a new body";
            if (by is null) _audit.LogInformation("job {Job} (submitted by key {Key}) promoted itself: {What} now serves its output", record.Id, Who(record.SubmittedBy), what);
            else _audit.LogInformation("key {Key} promoted job {Job}: {What} now serves its output", Who(by), record.Id, what);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var why = ClientMessage(record, e);
            _logger.LogError(e, "job {Job} could not be promoted: {Reason}", record.Id, e.Message);
            Context(record).Update(r => r.PromotionError = why, persistNow: true);
            if (record.State == JobStates.Succeeded) throw new ServingException(ServingError.Conflict, $"job {record.Id} cannot be promoted: {why}");
        }
        finally
        {
            _promotions.Release();
        }
    }

    /// <summary>
    /// What a client is told of a failure: no server path (data files by their client names, the job's folder as JOB),
    /// no .NET exception type, and no content of a data-root file (a malformed record of one is reported by line only;
    /// the reason, which may quote the file, goes to the log). Uploaded data is the client's own: its reasons are shown.
    /// </summary>
    internal static string ClientMessage(JobRecord record, Exception e)
    {
        if (e is TrainingDataException data)
        {
            var file = record.Data.FirstOrDefault(d => SamePath(d.Path, data.File));
            var name = file?.Name ?? "the data";
            return file?.Source == JobData.FromUpload
                ? $"{name}:{data.Line}: {Redact(data.Reason, record)}"
                : $"{name}:{data.Line}: malformed record (the reason is in the host's log; it may quote the file)";
        }
        var known = e is InvalidDataException or IOException or ArgumentException or HeadConfigurationException or ServingException
            or Checkpoints.CheckpointException or Bert.BertConfigException or Checkpoints.BodyLoadException or InvalidOperationException;
        return known ? Redact(e.Message, record) : "the job failed on an internal error; see the host's log";
    }

    /// <summary>The job's own paths as the client knows them (data files by name, the job's folder as JOB), then any other path by its last component.</summary>
    private static string Redact(string text, JobRecord record) => IO.ClientPaths.Redact(text,
        [.. record.Data.Select(d => (d.Path, d.Name ?? Path.GetFileName(d.Path))), .. record.Sources.Select(kv => (kv.Value, (string?)record.Options[kv.Key] ?? kv.Key)),
         (record.Folder, "JOB")]);

    private static bool SamePath(string a, string b)
    {
        try
        {
            return string.Equals(Path.GetFullPath(a), Path.GetFullPath(b), StringComparison.Ordinal);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            return false;
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
