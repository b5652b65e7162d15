using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;

namespace BertHost.Core.Serving;

/// <summary>One configured head at run time: the loaded head or why there is none, and its serving record.</summary>
public sealed class HeadSlot
{
    private long _errors;
    private string? _lastError;

    public HeadSlot(string name, string kind, IHead? head, string state, string? error, string? plugin, string? pluginSha256,
        string? weights = null, string? promotedFromJob = null)
    {
        Weights = weights;
        PromotedFromJob = promotedFromJob;
        Name = name;
        Kind = kind;
        Head = head;
        State = state;
        Error = error;
        Plugin = plugin;
        PluginSha256 = pluginSha256;
    }

    public string Name { get; }
    public string Kind { get; }

    /// <summary>The head, when it loaded (also kept for stale heads, which are refused but can be retrained).</summary>
    public IHead? Head { get; }

    /// <summary><c>ready</c>, <c>failed</c> or <c>stale</c>.</summary>
    public string State { get; }

    /// <summary>Why the head is not ready.</summary>
    public string? Error { get; }

    public string? Plugin { get; }
    public string? PluginSha256 { get; }

    /// <summary>The weights folder the head was built from; null for a fresh head.</summary>
    public string? Weights { get; }

    /// <summary>The training job whose weights these are, when a job's head was promoted into this slot.</summary>
    public string? PromotedFromJob { get; }

    public bool IsReady => State == HeadStates.Ready && Head is not null;

    /// <summary>Errors raised by the head while serving (its requests failed; the head stays up).</summary>
    public long ServingErrors => Interlocked.Read(ref _errors);

    public string? LastServingError => Volatile.Read(ref _lastError);

    internal void RecordServingError(string message)
    {
        Interlocked.Increment(ref _errors);
        Volatile.Write(ref _lastError, message);
    }

    public HeadStatus ToStatus(bool withDetails)
    {
        JsonObject? details = null;
        if (withDetails)
        {
            details = Head is null ? new JsonObject() : SafeDescribe(Head);
            details["serving_errors"] = ServingErrors;
            if (Weights is not null) details["weights"] = Weights;
            if (PromotedFromJob is not null) details["promoted_from_job"] = PromotedFromJob;
            if (LastServingError is { } last) details["last_serving_error"] = last;
        }
        return new HeadStatus
        {
            Name = Name,
            Kind = Kind,
            State = State,
            Error = Error,
            Labels = Head?.Labels ?? [],
            Plugin = Plugin,
            PluginSha256 = PluginSha256,
            Details = details,
        };
    }

    // A plugin's Describe is plugin code too: its failure must not break listing the heads.
    private static JsonObject SafeDescribe(IHead head)
    {
        try
        {
            return head.Describe();
        }
        catch (Exception e)
        {
            return new JsonObject { ["describe_error"] = e.Message };
        }
    }
}

public static class HeadStates
{
    public const string Ready = "ready";
    public const string Failed = "failed";
    public const string Stale = "stale";

    /// <summary>
    /// The one rule for serving a head in <paramref name="state"/>: a stale head is refused with 409 (it needs
    /// re-training), one that failed to load with 503. The engine applies it to every request; the HTTP routes apply it
    /// before reading a request's inputs.
    /// </summary>
    public static void EnsureServable(string head, string state, string? error, string? field)
    {
        if (state == Ready) return;
        if (state == Stale)
            throw new ServingException(ServingError.StaleHead, error ?? $"head {head} is stale; re-train it", field);
        var why = error is { Length: > 0 } e ? $": {e}" : "";
        throw new ServingException(ServingError.Unavailable, $"head '{head}' is {state}{why}", field);
    }

    /// <summary>Why a head trained on another body is refused.</summary>
    public static string StaleReason(string head, string trainedOn, string served) =>
        $"head {head} was trained on body {trainedOn}, the served body is {served}; re-train it";
}
