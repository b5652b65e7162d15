using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;

// What the host's own routes read and answer, as types the OpenAPI generator describes. The handlers read and write
// the JSON themselves (to refuse oversized bodies before reading, name the field of every error and keep answers
// bounded), so these types are the contract's documentation; the tests check the answers against the document.
namespace BertHost.Api.OpenApi;

[Description("Every failure of the host's own routes.")]
public sealed record Error([property: JsonPropertyName("error")] ErrorBody Body);

public sealed record ErrorBody(
    [property: Description("Machine-readable error code.")] string Code,
    [property: Description("What went wrong, in words; never a server path or a .NET type name.")] string Message,
    [property: Description("The JSON path of the offending field, e.g. inputs[1].text; null when none.")] string? Field);

public sealed record HeadList(IReadOnlyList<Head> Heads);

public record Head(
    string Name,
    [property: Description("The head kind (what YAML's kind names), e.g. text-classification, embedding.")] string Kind,
    [property: Description("ready, failed (did not load) or stale (trained on another body: refused).")] string State,
    [property: Description("Why the head is not ready.")] string? Error,
    IReadOnlyList<string> Labels,
    [property: Description("The plugin assembly's file name.")] string? Plugin,
    [property: Description("SHA-256 (hex) of the plugin assembly.")] string? PluginSha256);

public sealed record HeadDetail(string Name, string Kind, string State, string? Error, IReadOnlyList<string> Labels, string? Plugin, string? PluginSha256,
    [property: Description("Kind-specific description: options in force, serving error count and last error, weights.")] JsonObject Details)
    : Head(Name, Kind, State, Error, Labels, Plugin, PluginSha256);

public sealed record PredictRequest(
    [property: Description("At most host.max_inputs_per_request items (413 above). Each is what the head's kind accepts, e.g. a string or {\"text\", \"text_pair\"}.")]
    IReadOnlyList<JsonElement> Inputs,
    [property: Description("Kind-specific options for this request (e.g. top_k); parameters no head reads are refused.")] JsonObject? Parameters);

public sealed record PredictResponse([property: Description("One output per input, in input order.")] IReadOnlyList<JsonNode> Outputs);

public sealed record PredictManyRequest(
    [property: Description("The heads, each named once; identical token sequences of several heads are one body row.")] IReadOnlyList<string> Heads,
    IReadOnlyList<JsonElement> Inputs,
    JsonObject? Parameters);

public sealed record PredictManyResponse([property: Description("Per input, in input order, each head's output keyed by head name.")] IReadOnlyList<JsonObject> Outputs);

[Description("Facts about the shared body: model folder, fingerprint, device, dtype, sizes, fast paths, passes so far.")]
public sealed record BodyFacts(string ModelFolder, string Fingerprint, string Device, string Dtype, int HiddenSize, int NumHiddenLayers,
    int MaxSequenceLength, bool HasPooler, string AttentionCore, JsonObject FastPaths, long BodyPasses, long BodyRows);

public sealed record Liveness([property: Description("ok while the process serves.")] string Status);

public sealed record Readiness(
    [property: Description("ready; not_ready (a required head failed to load); stopping.")] string Status,
    IReadOnlyList<HeadReadiness> Heads);

public sealed record HeadReadiness(string Name, string State,
    [property: Description("Whether readiness waits for this head (the deployment's required, default true).")] bool Required,
    string? Error);

[Description("A training job's data: a file name relative to a data root (jobs.data_roots) as a string, or {content, name}: the file's text itself.")]
public sealed record JobData(
    [property: Description("The file's text (JSONL, TSV, CoNLL, ...).")] string Content,
    [property: Description("A file name for records and format detection by extension, e.g. train.tsv.")] string? Name);

[Description("A job: kind train (head and train, or mode multitask with tasks) or pretrain (masked-LM pre-training: corpus and one of config_size, config, from). Data fields are a JobData object or a data-root file name. Unknown fields are refused (400).")]
public sealed record JobRequest(
    [property: Description("train (default) or pretrain.")] string? Kind,
    [property: Description("The head to train (it must support training).")] string? Head,
    JobData? Train,
    JobData? Eval,
    [property: Description("mode multitask: the heads trained jointly with the body, each with its data.")] IReadOnlyList<JsonObject>? Tasks,
    [property: Description("head | partial | full | multitask.")] string? Mode,
    int? Epochs, int? BatchSize, double? LearningRate, double? WeightDecay, double? WarmupRatio, double? MaxGradNorm,
    int? GradientAccumulationSteps, long? Seed, int? PartialLayers, int? Patience, bool? EvalEveryEpoch, int? CheckpointEvery,
    [property: Description("fp32 | bf16 | auto (train); fp32 | tf32 (pretrain).")] string? Precision,
    string? Format, bool? SkipMalformed,
    [property: Description("Serve the result when the job succeeds; true needs the admin scope.")] bool? Promote,
    [property: Description("pretrain: plain-text files (.txt, .gz, .xz).")] IReadOnlyList<JobData>? Corpus,
    string? ConfigSize, JobData? Config, string? From, string? Vocab, int? MaxSteps, double? MaxMinutes, int? GradAccum, int? SeqLen,
    int? LongSeqLen, double? LongFraction, int? Warmup, double? MaskProb, bool? WholeWord, int? EvalEvery, int? EvalSequences, int? LogEvery);

[Description("A job's record: state, progress, results, and links.")]
public sealed record Job(string Id, string Kind,
    [property: Description("queued | running | succeeded | failed | cancelled | interrupted.")] string State,
    string? Head, string? Mode, JsonObject? Options, IReadOnlyList<JsonObject>? Data,
    [property: Description("The id of the API key that submitted the job.")] string? SubmittedBy,
    DateTimeOffset Created, DateTimeOffset? Started, DateTimeOffset? Finished,
    int? Epoch, int? Epochs, long? Step, long? TotalSteps, double? Loss, double? ExamplesPerSecond, double? EtaSeconds,
    IReadOnlyList<JsonObject>? EpochResults, int? BestEpoch, JsonObject? BestMetrics,
    [property: Description("Why the job failed (data errors name file and line).")] string? Error,
    bool? Promote, bool? Promoted, IReadOnlyDictionary<string, string> Links);

public sealed record JobList(IReadOnlyList<Job> Jobs);

[Description("multipart/form-data: the job's JSON in the part 'job', data files in parts named after the field they fill (train, eval, corpus, config, tasks[i].train, tasks[i].eval).")]
public sealed record JobUpload(JobRequest Job, IFormFile? Train, IFormFile? Eval, IFormFileCollection? Corpus, IFormFile? Config);
