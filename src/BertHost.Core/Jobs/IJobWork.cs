using BertHost.Core.Deployments;
using Microsoft.Extensions.Logging;
using System.Text.Json;
using BertHost.Core.Config;
using BertHost.Core.Serving;

namespace BertHost.Core.Jobs;

/// <summary>
/// What one kind of job does (<c>train</c>, <c>pretrain</c>): check a
/// submission, run, and serve its output. The runner owns the queue, the states, persistence and cancellation.
/// </summary>
public interface IJobWork
{
    /// <summary>The <c>kind</c> value of submissions this work handles.</summary>
    string Kind { get; }

    /// <summary>Every field a submission of this kind may carry (besides <c>kind</c>); others are refused (400).</summary>
    IReadOnlyList<string> Fields { get; }

    /// <summary>
    /// Checks the submission's fields (<see cref="ServingException"/> naming the field: unknown head 404, bad values
    /// 400/422, unreadable files 422) and returns the new job's record.
    /// </summary>
    JobRecord Prepare(JobRequest request, JobEnvironment environment, JobIdentity identity);

    /// <summary>
    /// Runs the job (on a worker thread), reporting through <paramref name="context"/>; returns when its output is
    /// written to the job's folder. Throws <see cref="OperationCanceledException"/> when cancelled, anything else on failure.
    /// </summary>
    void Run(JobContext context, CancellationToken cancellationToken);

    /// <summary>Serves what a succeeded job produced. A refusal (e.g. the body changed since) throws <see cref="ServingException"/> (409).</summary>
    Task PromoteAsync(JobContext context);
}

/// <summary>The id, folder and submission time the runner gives a new job, and who submits it.</summary>
/// <param name="SubmittedBy">The submitting API key's id (null without authentication).</param>
/// <param name="MayPromote">Whether the submitter may ask for the output to be served (<c>promote: true</c>: the admin scope).</param>
public sealed record JobIdentity(string Id, string Folder, DateTimeOffset Created, string? SubmittedBy = null, bool MayPromote = true);

/// <summary>What job kinds get from the host.</summary>
public sealed class JobEnvironment
{
    public required IServedModels Engine { get; init; }
    public required JobsSection Settings { get; init; }


    public required Microsoft.Extensions.Logging.ILoggerFactory Loggers { get; init; }
}

/// <summary>A running (or promoting) job as its work sees it: its record, folder and the host, and the way to report.</summary>
public sealed class JobContext
{
    private readonly Action<Action<JobRecord>, bool> _update;

    internal JobContext(JobRecord record, JobEnvironment environment, Action<Action<JobRecord>, bool> update)
    {
        Record = record;
        Environment = environment;
        _update = update;
    }

    /// <summary>Adds what this job just swapped in (a body and/or head weights) to the promotion record, so that a restart serves the same.</summary>
    public void RecordPromotion(string? body, IReadOnlyDictionary<string, string> heads) =>
        Promotions.Record(Environment.Settings.Directory, Record.Id, body, heads, Environment.Loggers.CreateLogger<Promotions>());

    /// <summary>The job's record; read what was asked from it, change it only through <see cref="Update"/>.</summary>
    public JobRecord Record { get; }
    public JobEnvironment Environment { get; }
    public string Folder => Record.Folder;

    /// <summary>Test hook: called on the job's thread after each epoch's result (pretrain: each loss-curve point, with its step) is recorded.</summary>
    internal Action<int>? EpochEnded { get; init; }

    /// <summary>Applies <paramref name="change"/> to the record under the runner's lock; persisted now when <paramref name="persistNow"/>, else at most every few seconds.</summary>
    public void Update(Action<JobRecord> change, bool persistNow = false) => _update(change, persistNow);
}
