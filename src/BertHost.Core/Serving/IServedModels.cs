using BertHost.Abstractions.Heads;
using BertHost.Core.Body;
using BertHost.Core.Config;

namespace BertHost.Core.Serving;

/// <summary>
/// What training jobs need of the served models: the body to train on (held by a lease), new instances of the served
/// heads, and the swaps that promote a job's output. Jobs hold this, not the engine.
/// </summary>
public interface IServedModels
{
    HostConfig Config { get; }

    /// <summary>The body serving now.</summary>
    BertBody Body { get; }

    /// <summary>A reference to the served body that keeps it alive even if another body is swapped in meanwhile.</summary>
    BodyLease AcquireBody();

    /// <summary>The deployment entry of head <paramref name="name"/>, or null.</summary>
    HeadSection? FindSection(string name);

    /// <summary>Why head <paramref name="name"/> cannot be trained; null when it can.</summary>
    string? TrainingRefusal(string name);

    /// <summary>The weights folder head <paramref name="name"/> serves from now; null for a fresh head.</summary>
    string? ServedWeights(string name);

    /// <summary>A new instance of served head <paramref name="name"/> on <paramref name="body"/> from <paramref name="weights"/> (null = fresh).</summary>
    IHead CreateHead(string name, BertBody body, string? weights);

    Task SwapHeadAsync(string name, string weights, string? job);

    Task SwapBodyAsync(string bodyFolder, IReadOnlyDictionary<string, string> headWeights, string? job);
}
