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
    /// <summary>Padded tokens (rows × longest row) one body pass may hold.</summary>
    public int MaxBatchTokens { get; init; } = 16384;

    /// <summary>Requests (inputs) one body pass may hold.</summary>
    public int MaxBatchRequests { get; init; } = 64;

    /// <summary>How long the first waiting input may wait for others to join its batch.</summary>
    public int MaxWaitMs { get; init; } = 5;

    /// <summary>Inputs waiting or running at most; beyond it requests are refused with 429 instead of queueing without bound.</summary>
    public int MaxQueuedInputs { get; init; } = 4096;
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

    /// <summary><c>auto</c>: a partial/full job's new body is served as soon as the job succeeds; <c>manual</c>: only after <c>POST /v1/jobs/{id}/promote</c>.</summary>
    public string BodySwap { get; init; } = "auto";
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

    /// <summary>Line of the entry in the YAML file, for messages.</summary>
    public int Line { get; init; }
}
