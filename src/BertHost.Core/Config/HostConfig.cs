using System.Text.Json;

namespace BertHost.Core.Config;

/// <summary>A validated deployment (<c>config/*.yaml</c>). Paths are absolute, resolved against the YAML file's folder.</summary>
public sealed record HostConfig
{
    /// <summary>The YAML file this came from.</summary>
    public required string SourcePath { get; init; }

    public HostSection Host { get; init; } = new();
    public required BodySection Body { get; init; }
    public BatchingSection Batching { get; init; } = new();

    /// <summary>Training jobs over HTTP; the directory defaults to <c>jobs/</c> next to the YAML file.</summary>
    public JobsSection Jobs { get; init; } = new() { Directory = "jobs" };

    /// <summary>API keys and what each may do; null when the file has no <c>auth:</c> section (then the host binds loopback only).</summary>
    public AuthSection? Auth { get; init; }

    /// <summary>Traces and metrics export (OTLP); <c>/metrics</c> serves either way.</summary>
    public TelemetrySection Telemetry { get; init; } = new();

    /// <summary>Default heads of the protocol routes that name none.</summary>
    public ProtocolsSection Protocols { get; init; } = new();

    public IReadOnlyList<HeadSection> Heads { get; init; } = [];

    /// <summary>
    /// Head plugin problems (assembly not found, sha256 mismatch) tolerated when loading for serving, formatted
    /// <c>FILE:LINE: PATH: message</c>; those heads fail to load and the others serve.
    /// </summary>
    public IReadOnlyList<string> HeadPluginProblems { get; init; } = [];
}

/// <summary><c>host:</c></summary>
public sealed record HostSection
{
    /// <summary>Addresses to listen on, separated by ';' (ASP.NET Core <c>urls</c>). Loopback by default.</summary>
    public string Urls { get; init; } = "http://127.0.0.1:5080";

    /// <summary>Largest request body accepted, in bytes (413 above it).</summary>
    public long MaxRequestBytes { get; init; } = 1 << 20;

    /// <summary>Most inputs in one request (413 above it).</summary>
    public int MaxInputsPerRequest { get; init; } = 256;

    /// <summary>What to do with an input longer than the body's max length: <c>truncate</c> or <c>refuse</c> (422).</summary>
    public string Oversized { get; init; } = "truncate";

    /// <summary>How long shutdown waits for in-flight requests to finish, in seconds.</summary>
    public int ShutdownTimeoutSeconds { get; init; } = 30;

    /// <summary>Tokens one input may become after tokenization, every window of a long text counted (413 above it).</summary>
    public int MaxInputTokens { get; init; } = 16384;

    /// <summary>Tokens of all inputs of one request, for every head it names (413 above it).</summary>
    public int MaxRequestTokens { get; init; } = 65536;

    /// <summary>Longest a request may take before it is cancelled and answered 504.</summary>
    public int RequestTimeoutSeconds { get; init; } = 60;

    /// <summary>Largest response body written; a larger answer is refused (413) instead of being sent.</summary>
    public long MaxResponseBytes { get; init; } = 16L << 20;

    /// <summary>Host header values answered (ASP.NET Core host filtering); null = the bound names plus localhost, 127.0.0.1 and [::1].</summary>
    public IReadOnlyList<string>? AllowedHosts { get; init; }

    /// <summary>Origins allowed to call the API from a browser (CORS); empty = CORS off.</summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];

    /// <summary>The server certificate of https:// addresses; null = Kestrel's default (the development certificate).</summary>
    public HttpsSection? Https { get; init; }
}

/// <summary><c>host.https:</c> the server certificate and client certificates (mutual TLS).</summary>
public sealed record HttpsSection
{
    /// <summary>A PKCS#12 (.pfx/.p12) file, or a PEM certificate with <see cref="KeyFile"/> (absolute).</summary>
    public required string Certificate { get; init; }

    /// <summary>The PEM private key of a PEM certificate (absolute); null for PKCS#12.</summary>
    public string? KeyFile { get; init; }

    /// <summary>The PKCS#12 password (usually <c>${ENV}</c>).</summary>
    public string? Password { get; init; }

    /// <summary><c>none</c>, <c>allow</c> or <c>require</c>: whether clients must present a certificate.</summary>
    public string ClientCertificates { get; init; } = "none";

    /// <summary>PEM file of the certificate authority client certificates must chain to (absolute); null = the system's.</summary>
    public string? ClientCa { get; init; }
}

/// <summary>The scopes an API key may carry: what each lets a client do.</summary>
public static class Scopes
{
    /// <summary>Read the heads and the body, predict, read metrics.</summary>
    public const string Predict = "predict";

    /// <summary>Submit, list, read and cancel training jobs.</summary>
    public const string Train = "train";

    /// <summary>Change what is served: promote a job's head or body (and everything <c>predict</c> and <c>train</c> allow).</summary>
    public const string Admin = "admin";

    public static readonly string[] All = [Predict, Train, Admin];
}

/// <summary><c>auth:</c> API keys with scopes.</summary>
public sealed record AuthSection
{
    public IReadOnlyList<ApiKeySection> Keys { get; init; } = [];

    /// <summary>Requests without a key are served with <see cref="AnonymousScopes"/> (required to bind a non-loopback address without keys).</summary>
    public bool AllowAnonymous { get; init; }

    /// <summary>The scopes of a request without a key when <see cref="AllowAnonymous"/>.</summary>
    public IReadOnlyList<string> AnonymousScopes { get; init; } = [Scopes.Predict];
}

/// <summary>One entry of <c>auth.keys</c>: the key's id (in logs), the SHA-256 of the key and its scopes.</summary>
public sealed record ApiKeySection
{
    public required string Id { get; init; }

    /// <summary>Lower-case hex SHA-256 of the key's UTF-8 bytes.</summary>
    public required string Sha256 { get; init; }

    public required IReadOnlyList<string> Scopes { get; init; }
}

/// <summary><c>body:</c></summary>
public sealed record BodySection
{
    /// <summary>Hugging Face model folder (absolute).</summary>
    public required string Checkpoint { get; init; }

    public string Device { get; init; } = "auto";
    public string DType { get; init; } = "float32";

    /// <summary>Cap on sequence length (≤ the model's own); null = the model's.</summary>
    public int? MaxSequenceLength { get; init; }

    /// <summary>Serve with oneDNN-layout copies of the Linear weights on the CPU (faster; twice those weights' memory).</summary>
    public bool PrepackWeights { get; init; } = true;

    /// <summary>Run the attention core of CPU float32 passes with BertHost's AVX-512/AVX2 kernel where it applies, else libtorch's SDPA.</summary>
    public bool AttentionKernel { get; init; } = true;

    /// <summary><c>none</c> or <c>dynamic_int8</c> (int8 Linear layers for serving on the CPU).</summary>
    public string Quantize { get; init; } = "none";

    /// <summary>Linear names kept in float32 when quantizing.</summary>
    public IReadOnlyList<string> QuantizeExclude { get; init; } = [];
}

/// <summary><c>batching:</c> (like text-embeddings-inference's max-batch-tokens / max-concurrent-requests).</summary>
public sealed record BatchingSection
{
    /// <summary>
    /// Padded tokens (rows × longest row) one body pass may hold; null: the body's device decides
    /// (<see cref="Body.PassBudget.DefaultTokens"/>: 1,024 on a CPU, 16,384 on a GPU).
    /// </summary>
    public int? MaxBatchTokens { get; init; }

    /// <summary>Requests (inputs) one body pass may hold.</summary>
    public int MaxBatchRequests { get; init; } = 64;

    /// <summary>How long the first waiting input may wait for others to join its batch.</summary>
    public int MaxWaitMs { get; init; } = 5;

    /// <summary>Inputs waiting or running at most; beyond it requests are refused with 429 instead of queueing without bound.</summary>
    public int MaxQueuedInputs { get; init; } = 4096;

    /// <summary>Tokens (every window counted) waiting or running at most; beyond it requests are refused with 429.</summary>
    public long MaxQueuedTokens { get; init; } = 1L << 20;
}

/// <summary><c>jobs:</c> training jobs submitted over HTTP.</summary>
public sealed record JobsSection
{
    /// <summary>Folder (absolute) holding one sub-folder per job (record, history, checkpoints, outputs) and promoted.json.</summary>
    public required string Directory { get; init; }

    /// <summary>Jobs that run at the same time; the others wait in the queue.</summary>
    public int MaxConcurrent { get; init; } = 1;

    /// <summary>Jobs found queued or running when the host starts (it was stopped or killed) are queued again and resume from their checkpoint.</summary>
    public bool ResumeInterrupted { get; init; } = true;

    /// <summary><c>auto</c>: a partial/full job's new body is served as soon as the job succeeds; <c>manual</c> (default): only after <c>POST /v1/jobs/{id}/promote</c>.</summary>
    public string BodySwap { get; init; } = "manual";

    /// <summary>Whether the <c>/v1/jobs</c> routes run jobs at all (off unless the deployment says <c>enabled: true</c>).</summary>
    public bool Enabled { get; init; }

    /// <summary><c>auto</c>: a head-mode job's head serves as soon as the job succeeds; <c>manual</c> (default): only when promoted.</summary>
    public string Promote { get; init; } = "manual";

    /// <summary>Folders (absolute, symlinks resolved) whose regular files jobs may read by relative name; empty = uploaded data only.</summary>
    public IReadOnlyList<string> DataRoots { get; init; } = [];

    /// <summary>Largest <c>POST /v1/jobs</c> body (uploaded data included), in bytes.</summary>
    public long MaxUploadBytes { get; init; } = 64L << 20;

    /// <summary>Largest data file a job may read from a data root, in bytes.</summary>
    public long MaxDataBytes { get; init; } = 4L << 30;
}

/// <summary>One entry of <c>heads:</c>.</summary>
public sealed record HeadSection
{
    public required string Name { get; init; }
    public required string Kind { get; init; }

    /// <summary>Plugin folder or .dll (absolute).</summary>
    public required string Plugin { get; init; }

    /// <summary>Expected SHA-256 (hex) of the plugin's main assembly; null = not pinned.</summary>
    public string? Sha256 { get; init; }

    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>Head weights folder (absolute); null = a fresh head.</summary>
    public string? Weights { get; init; }

    /// <summary>The <c>options:</c> mapping converted to JSON (an empty object when absent).</summary>
    public JsonElement Options { get; init; } = JsonDocument.Parse("{}").RootElement.Clone();

    /// <summary>
    /// Whether the host is ready only when this head loaded (<c>/readyz</c>, <c>/v2/health/ready</c>); false marks a
    /// head whose failure should not take the host out of a load balancer.
    /// </summary>
    public bool Required { get; init; } = true;

    /// <summary>
    /// How a LoRA head (a head folder whose head.json has <c>lora</c>) is served: <see cref="AdapterModes.Serve"/> adds
    /// its update to its own rows of the shared body pass; <see cref="AdapterModes.Merge"/> gives it a private body copy
    /// with the adapter merged into the weights (for a deployment whose only head is that one). Ignored for other heads.
    /// </summary>
    public string Adapter { get; init; } = AdapterModes.Serve;

    /// <summary>Line of the entry in the YAML file, for messages.</summary>
    public int Line { get; init; }
}

/// <summary><c>telemetry:</c></summary>
public sealed record TelemetrySection
{
    /// <summary>An OTLP collector (gRPC, e.g. <c>http://127.0.0.1:4317</c>) that receives traces and metrics; null = none.</summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary><c>grpc</c> (default, port 4317) or <c>http/protobuf</c> (port 4318; the endpoint is the collector's base address).</summary>
    public string OtlpProtocol { get; init; } = "grpc";

    /// <summary>The <c>service.name</c> resource attribute of what is exported.</summary>
    public string ServiceName { get; init; } = "berthost";
}

/// <summary><c>protocols:</c></summary>
public sealed record ProtocolsSection
{
    /// <summary>The head TEI's <c>/embed</c> uses when the request names none; null = the deployment's only embedding head.</summary>
    public string? EmbedHead { get; init; }

    /// <summary>The head TEI's <c>/rerank</c> uses when the request names none; null = the only text-classification head.</summary>
    public string? RerankHead { get; init; }
}

/// <summary>Values of a head's <c>adapter:</c> key.</summary>
public static class AdapterModes
{
    public const string Serve = "serve";
    public const string Merge = "merge";
}
