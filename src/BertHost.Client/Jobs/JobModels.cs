using System.Text.Json;
using System.Text.Json.Serialization;

namespace BertHost.Client;

/// <summary>
/// A training data file of a job: inline text (<see cref="Inline"/>, stored in the job's folder under a name the host
/// picks) or a file name relative to one of the host's <c>jobs.data_roots</c> (<see cref="FromDataRoot"/>). Files
/// can also be uploaded (<see cref="JobUpload"/>). A client never names a server path.
/// </summary>
[JsonConverter(typeof(JobDataConverter))]
public sealed record JobData
{
    private JobData(string? dataRootName, string? content, string? name)
    {
        DataRootName = dataRootName;
        Content = content;
        Name = name;
    }

    /// <summary>The name relative to a data root; null for inline data.</summary>
    public string? DataRootName { get; }

    /// <summary>The file's text; null for a data-root name.</summary>
    public string? Content { get; }

    /// <summary>A file name for inline data (records and format detection by extension, e.g. <c>train.tsv</c>).</summary>
    public string? Name { get; }

    public static JobData Inline(string content, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(content);
        return new JobData(null, content, name);
    }

    public static JobData FromDataRoot(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new JobData(name, null, null);
    }

    private sealed class JobDataConverter : JsonConverter<JobData>
    {
        public override JobData Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            throw new NotSupportedException("JobData is written, not read: job records list their data as JobDataFile");

        public override void Write(Utf8JsonWriter writer, JobData value, JsonSerializerOptions options)
        {
            if (value.DataRootName is { } name)
            {
                writer.WriteStringValue(name);
                return;
            }
            writer.WriteStartObject();
            writer.WriteString("content", value.Content);
            if (value.Name is not null) writer.WriteString("name", value.Name);
            writer.WriteEndObject();
        }
    }
}

/// <summary>One task of a multitask job.</summary>
public sealed record JobTask(string Head, JobData? Train = null, JobData? Eval = null);

/// <summary>
/// A file uploaded with a job (multipart): <see cref="Field"/> is the field it fills (<c>train</c>, <c>eval</c>,
/// <c>corpus</c>, <c>config</c>, <c>tasks[i].train</c>, <c>tasks[i].eval</c>); several parts may fill <c>corpus</c>.
/// </summary>
public sealed class JobUpload
{
    private readonly Func<Stream> _open;

    private JobUpload(string field, string fileName, Func<Stream> open)
    {
        ArgumentException.ThrowIfNullOrEmpty(field);
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        Field = field;
        FileName = fileName;
        _open = open;
    }

    public string Field { get; }

    /// <summary>The name the job's record shows (the host stores the file under a name of its own).</summary>
    public string FileName { get; }

    internal Stream Open() => _open();

    /// <summary>A local file, opened when the job is sent and closed after.</summary>
    public static JobUpload FromFile(string field, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new JobUpload(field, Path.GetFileName(path), () => File.OpenRead(path));
    }

    /// <summary>A stream, read from its position to the end and closed when the call ends (as <see cref="StreamContent"/> does).</summary>
    public static JobUpload FromStream(string field, string fileName, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return new JobUpload(field, fileName, () => stream);
    }
}

/// <summary>
/// A job submission (<c>POST /v1/jobs</c>): kind <c>train</c> (a head and its data, or mode <c>multitask</c> with
/// <see cref="Tasks"/>) or <c>pretrain</c> (masked-LM pre-training on <see cref="Corpus"/>). Fields left null are not
/// sent (the host's defaults apply); fields this type lacks go in <see cref="AdditionalFields"/>. The host checks
/// every field before queueing and refuses with the field's name (400 type, 404 head, 422 value or data).
/// </summary>
public sealed record JobRequest
{
    /// <summary><c>train</c> (default) or <c>pretrain</c>.</summary>
    public string? Kind { get; init; }

    public string? Head { get; init; }
    public JobData? Train { get; init; }
    public JobData? Eval { get; init; }

    /// <summary><c>head</c> | <c>partial</c> | <c>full</c> | <c>multitask</c>.</summary>
    public string? Mode { get; init; }

    public IReadOnlyList<JobTask>? Tasks { get; init; }
    public int? Epochs { get; init; }
    public int? BatchSize { get; init; }
    public double? LearningRate { get; init; }
    public double? WeightDecay { get; init; }
    public double? WarmupRatio { get; init; }
    public double? MaxGradNorm { get; init; }
    public int? GradientAccumulationSteps { get; init; }
    public long? Seed { get; init; }
    public int? PartialLayers { get; init; }
    public int? Patience { get; init; }
    public bool? EvalEveryEpoch { get; init; }
    public int? CheckpointEvery { get; init; }

    /// <summary><c>fp32</c> | <c>bf16</c> | <c>auto</c> (train); <c>fp32</c> | <c>tf32</c> (pretrain).</summary>
    public string? Precision { get; init; }

    public string? Format { get; init; }
    public bool? SkipMalformed { get; init; }

    /// <summary>Serve the output when the job succeeds (needs the admin scope).</summary>
    public bool? Promote { get; init; }

    /// <summary>pretrain: plain-text files (<c>.txt</c>, <c>.gz</c>, <c>.xz</c>).</summary>
    public IReadOnlyList<JobData>? Corpus { get; init; }

    public string? ConfigSize { get; init; }
    public JobData? Config { get; init; }

    /// <summary>pretrain: a model folder in a data root, or <c>served</c>.</summary>
    public string? From { get; init; }

    public string? Vocab { get; init; }
    public int? MaxSteps { get; init; }
    public double? MaxMinutes { get; init; }
    public int? GradAccum { get; init; }
    public int? SeqLen { get; init; }
    public int? LongSeqLen { get; init; }
    public double? LongFraction { get; init; }
    public int? Warmup { get; init; }
    public double? MaskProb { get; init; }
    public bool? WholeWord { get; init; }
    public int? EvalEvery { get; init; }
    public int? EvalSequences { get; init; }
    public int? LogEvery { get; init; }

    /// <summary>More fields, sent as given (e.g. ones a newer host reads).</summary>
    [JsonExtensionData]
    public IDictionary<string, object?>? AdditionalFields { get; init; }
}

/// <summary>A job as the host records it: state, progress, results, links. Fields this type lacks are in <see cref="AdditionalProperties"/>.</summary>
public sealed record Job
{
    public required string Id { get; init; }
    public required string Kind { get; init; }

    /// <summary><c>queued</c> | <c>running</c> | <c>succeeded</c> | <c>failed</c> | <c>cancelled</c> | <c>interrupted</c>.</summary>
    public required string State { get; init; }

    public string? Head { get; init; }
    public string? Mode { get; init; }
    public IReadOnlyList<string>? Heads { get; init; }

    /// <summary>The hyper-parameters in force (as given, with the defaults filled in).</summary>
    public JsonElement? Options { get; init; }

    public IReadOnlyList<JobDataFile> Data { get; init; } = [];
    public string? SubmittedBy { get; init; }
    public string? PromotedBy { get; init; }
    public DateTimeOffset Created { get; init; }
    public DateTimeOffset? Started { get; init; }
    public DateTimeOffset? Finished { get; init; }
    public int Epoch { get; init; }
    public int Epochs { get; init; }
    public long Step { get; init; }
    public long TotalSteps { get; init; }
    public double? Loss { get; init; }
    public double? ExamplesPerSecond { get; init; }
    public double? TokensPerSecond { get; init; }
    public double? EtaSeconds { get; init; }
    public IReadOnlyList<JobEpochResult> EpochResults { get; init; } = [];
    public int? BestEpoch { get; init; }
    public IReadOnlyDictionary<string, double>? BestMetrics { get; init; }
    public bool? StoppedEarly { get; init; }

    /// <summary>Why the job failed (a data error names its file and line).</summary>
    public string? Error { get; init; }

    public string? BodyFingerprint { get; init; }
    public string? OutputFingerprint { get; init; }
    public bool Promote { get; init; }
    public bool Promoted { get; init; }
    public DateTimeOffset? PromotedAt { get; init; }
    public string? PromotionError { get; init; }
    public bool CancelRequested { get; init; }
    public IReadOnlyDictionary<string, string> Links { get; init; } = new Dictionary<string, string>();

    /// <summary>Succeeded, failed or cancelled.</summary>
    [JsonIgnore]
    public bool IsFinished => State is "succeeded" or "failed" or "cancelled";

    /// <summary>Everything else the record holds (a pretrain job's curve, resume points...).</summary>
    [JsonExtensionData]
    public IDictionary<string, JsonElement>? AdditionalProperties { get; init; }
}

/// <summary>A data file a job read: its role (<c>train</c>, <c>eval</c>, <c>corpus</c>...), the name the client gave, size and sha256.</summary>
public sealed record JobDataFile(string Role, string? Name, long Bytes, string Sha256)
{
    /// <summary><c>upload</c> (uploaded or inline) or <c>data_root</c>.</summary>
    public string? Source { get; init; }
}

/// <summary>One epoch of a job: mean training loss, evaluation metrics (when evaluated) and its duration.</summary>
public sealed record JobEpochResult(int Epoch, double Loss, IReadOnlyDictionary<string, double>? Metrics, double Seconds)
{
    /// <summary>A multitask job's per-task losses and metrics.</summary>
    public JsonElement? Tasks { get; init; }
}

internal sealed record JobList(IReadOnlyList<Job> Jobs);
