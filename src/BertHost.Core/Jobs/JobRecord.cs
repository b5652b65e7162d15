using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using BertHost.Core.Pretraining;
using BertHost.Core.Training;

namespace BertHost.Core.Jobs;

/// <summary>The states of a job. Terminal: succeeded, failed, cancelled. Interrupted: the host stopped while it was queued or running.</summary>
public static class JobStates
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";
    public const string Interrupted = "interrupted";

    public static readonly string[] All = [Queued, Running, Succeeded, Failed, Cancelled, Interrupted];

    public static bool IsFinished(string state) => state is Succeeded or Failed or Cancelled;
}

/// <summary>Where a job resumed from its checkpoint after an interruption (the epoch, and the step within it, it went on from).</summary>
public sealed record JobResumePoint(int Epoch, int Step);

/// <summary>One epoch of a job: mean training loss, eval metrics (when evaluated) and its duration; a multitask job adds each task's loss and metrics.</summary>
public sealed record JobEpoch(int Epoch, double Loss, IReadOnlyDictionary<string, double>? Metrics, double Seconds,
    IReadOnlyDictionary<string, TaskEpochResult>? Tasks = null)
{
    public static JobEpoch Of(EpochResult e) => new(e.Epoch, e.TrainLoss, e.Metrics, Math.Round(e.Seconds, 3), e.Tasks?.Count > 1 ? e.Tasks : null);
}

/// <summary>
/// Everything known about one job, persisted as <c>job.json</c> in the job's folder (snake_case JSON): what was asked
/// (kind, head, mode, hyper-parameters, data files with their sha256), where it stands (state, epoch/step, running
/// loss, rate, ETA), what it produced (per-epoch results, best epoch, output fingerprint, promotion) or why it failed.
/// </summary>
public sealed class JobRecord
{
    public required string Id { get; init; }

    /// <summary>What the job does: <c>train</c> or <c>pretrain</c> (more kinds plug in through <see cref="IJobWork"/>).</summary>
    public required string Kind { get; init; }

    /// <summary>The head trained (train jobs).</summary>
    public string? Head { get; init; }

    /// <summary>head, partial, full or multitask (train jobs).</summary>
    public string? Mode { get; init; }

    /// <summary>The heads trained together (multitask train jobs).</summary>
    public List<string>? Heads { get; init; }

    /// <summary>The hyper-parameters in force (as given, with the defaults filled in).</summary>
    public JsonObject Options { get; init; } = new();

    /// <summary>The data files read, with their size and sha256 when submitted.</summary>
    public List<TrainingDataFile> Data { get; init; } = [];

    /// <summary>Server paths the job's model sources resolved to (pretrain <c>from</c>, <c>vocab</c>); never shown to clients.</summary>
    public Dictionary<string, string> Sources { get; init; } = new(StringComparer.Ordinal);

    /// <summary>The id of the API key that submitted the job (null without authentication).</summary>
    public string? SubmittedBy { get; init; }

    /// <summary>The id of the API key that promoted the job by hand.</summary>
    public string? PromotedBy { get; set; }

    public string State { get; set; } = JobStates.Queued;
    public DateTimeOffset Created { get; init; }
    public DateTimeOffset? Started { get; set; }
    public DateTimeOffset? Finished { get; set; }

    public int Epoch { get; set; }
    public int Epochs { get; set; }
    public int Step { get; set; }
    public int TotalSteps { get; set; }

    /// <summary>Running mean of the training loss in the current epoch.</summary>
    public double? Loss { get; set; }
    public double? ExamplesPerSecond { get; set; }

    /// <summary>Training tokens per second (pretrain jobs).</summary>
    public double? TokensPerSecond { get; set; }
    public double? EtaSeconds { get; set; }

    public List<JobEpoch> EpochResults { get; set; } = [];
    public int? BestEpoch { get; set; }
    public IReadOnlyDictionary<string, double>? BestMetrics { get; set; }
    public bool? StoppedEarly { get; set; }

    /// <summary>The loss curve of a pretrain job: running training loss every log_every steps, held-out eval loss and masked-token accuracy where evaluated.</summary>
    public List<PretrainPoint>? Curve { get; set; }

    /// <summary>Why a pretrain job stopped (max steps reached, or its time budget used).</summary>
    public string? StopReason { get; set; }

    /// <summary>Why the job failed (a data error names its file and line).</summary>
    public string? Error { get; set; }

    /// <summary>The job's folder: job.json, history.*, checkpoint/, head/ and (partial/full) body/.</summary>
    public required string Folder { get; init; }

    /// <summary>Fingerprint of the body the job started from (the served body when it started).</summary>
    public string? BodyFingerprint { get; set; }

    /// <summary>Fingerprint of the body the trained head belongs to (a new one after partial/full training).</summary>
    public string? OutputFingerprint { get; set; }

    /// <summary>Serve the output as soon as the job succeeds.</summary>
    public bool Promote { get; set; }
    public bool Promoted { get; set; }
    public DateTimeOffset? PromotedAt { get; set; }

    /// <summary>Why a promotion was refused (the job still succeeded; its output is in <see cref="Folder"/>).</summary>
    public string? PromotionError { get; set; }

    /// <summary>Set when the last run of the job went on from a checkpoint.</summary>
    public JobResumePoint? ResumedFrom { get; set; }

    /// <summary>Times the host stopped while the job was queued or running.</summary>
    public int Interruptions { get; set; }
    public bool CancelRequested { get; set; }

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        WriteIndented = true,
    };

    /// <summary>
    /// The record as clients see it: no server path — no folder, no sources, data files by the name the client gave
    /// them (<c>name</c>, <c>source</c>: upload or data_root) instead of their path.
    /// </summary>
    public JsonObject ToJson()
    {
        var json = JsonSerializer.SerializeToNode(this, Json)!.AsObject();
        json.Remove("folder");
        json.Remove("sources");
        if (json["data"] is JsonArray data)
            foreach (var file in data.OfType<JsonObject>())
            {
                var path = (string?)file["path"];
                file.Remove("path");
                file["name"] ??= path is null ? null : Path.GetFileName(path);
            }
        return json;
    }

    public static JobRecord FromJson(string text) =>
        JsonSerializer.Deserialize<JobRecord>(text, Json) ?? throw new JsonException("the record is null");
}
