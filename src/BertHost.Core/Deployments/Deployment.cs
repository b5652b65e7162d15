using BertHost.Abstractions.Heads;
using BertHost.Core.Body;
using BertHost.Core.Checkpoints;
using BertHost.Core.Config;
using Microsoft.Extensions.Logging;

namespace BertHost.Core.Deployments;

/// <summary>A head as deployed: its YAML section with the weights that serve (the YAML's, or a job's promoted ones).</summary>
/// <param name="PromotedByJob">The job whose weights serve instead of the YAML's; null when the YAML's serve.</param>
public sealed record DeployedHead(HeadSection Section, string? PromotedByJob)
{
    public string Name => Section.Name;
}

/// <summary>
/// What a deployment serves, built once from the YAML and the promotion record (<see cref="Promotions"/>): the body's
/// folder and each head's weights. Serving and training both build their bodies and heads through it, so both see the
/// same heads; neither reads <c>promoted.json</c> itself.
/// </summary>
public sealed class Deployment
{
    private Deployment(HostConfig config, string bodyCheckpoint, string? bodyPromotedByJob, IReadOnlyList<DeployedHead> heads)
    {
        Config = config;
        BodyCheckpoint = bodyCheckpoint;
        BodyPromotedByJob = bodyPromotedByJob;
        Heads = heads;
    }

    public HostConfig Config { get; }

    /// <summary>The model folder the body loads from.</summary>
    public string BodyCheckpoint { get; }

    /// <summary>The job whose body serves instead of the YAML's; null when the YAML's serves.</summary>
    public string? BodyPromotedByJob { get; }

    public IReadOnlyList<DeployedHead> Heads { get; }

    /// <summary>The YAML's body and heads as written (the CLI's <c>train</c> and <c>eval</c> use them: they never serve a job's promotions).</summary>
    public static Deployment FromConfig(HostConfig config) =>
        new(config, config.Body.Checkpoint, null, config.Heads.Select(h => new DeployedHead(h, null)).ToList());

    /// <summary>
    /// The YAML's body and heads with what training jobs promoted (<c>promoted.json</c> in <c>jobs.directory</c>) in
    /// their place, so a restart serves what was promoted. A promoted body folder that is gone is logged and the
    /// YAML's body serves.
    /// </summary>
    public static Deployment WithPromotions(HostConfig config, ILogger logger)
    {
        var promotions = Promotions.Load(config.Jobs.Directory, logger);
        var checkpoint = config.Body.Checkpoint;
        string? bodyJob = null;
        if (promotions.Body is { } promoted && !Directory.Exists(promoted.Path))
        {
            logger.LogError("body {Folder} promoted by job {Job} is gone; serving the deployment's {Configured}", promoted.Path, promoted.Job, config.Body.Checkpoint);
        }
        else if (promotions.Body is { } body)
        {
            logger.LogInformation("serving body {Folder} promoted by job {Job} instead of {Configured}", body.Path, body.Job, config.Body.Checkpoint);
            (checkpoint, bodyJob) = (body.Path, body.Job);
        }
        var heads = config.Heads.Select(h =>
        {
            if (promotions.Heads.GetValueOrDefault(h.Name) is not { } p) return new DeployedHead(h, null);
            logger.LogInformation("head {Head}: serving weights {Weights} promoted by job {Job}", h.Name, p.Path, p.Job);
            return new DeployedHead(h with { Weights = p.Path }, p.Job);
        }).ToList();
        return new Deployment(config, checkpoint, bodyJob, heads);
    }

    /// <summary>The deployment entry of head <paramref name="name"/> (with the weights that serve), or null.</summary>
    public DeployedHead? FindHead(string name) => Heads.FirstOrDefault(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>The deployment's body; see <see cref="LoadBody(HostConfig, string, bool, Lora.LoraAdapter?, bool)"/>.</summary>
    public BertBody LoadBody(bool forServing = false, bool prepack = false) => LoadBody(Config, BodyCheckpoint, forServing, prepack: prepack);

    /// <summary>
    /// A body with the deployment's body settings from <paramref name="checkpoint"/>; a body that does not load throws
    /// <see cref="BodyLoadException"/>. Only a body loaded <paramref name="forServing"/> gets prepacked weights
    /// (<c>body.prepack_weights</c>) and int8 projections (<c>body.quantize</c>): a body about to be trained would pay
    /// their memory for nothing. <paramref name="prepack"/> asks for prepacked weights without the rest: a frozen body
    /// computing a head-mode trainer's features runs the serving pass.
    /// </summary>
    /// <param name="mergeAdapter">A LoRA adapter to merge into the weights before they are packed (a private body for an <c>adapter: merge</c> head).</param>
    public static BertBody LoadBody(HostConfig config, string checkpoint, bool forServing, Lora.LoraAdapter? mergeAdapter = null, bool prepack = false) => BertBody.Load(checkpoint, new BodyOptions
    {
        MergeAdapter = mergeAdapter,
        Device = config.Body.Device,
        DType = config.Body.DType,
        MaxSequenceLength = config.Body.MaxSequenceLength,
        PrepackWeights = (forServing || prepack) && config.Body.PrepackWeights,
        CpuAttentionKernel = config.Body.AttentionKernel,
        // Quantized weights serve; a body loaded to be trained (or to compute a trainer's features) stays float32.
        Quantize = forServing ? config.Body.Quantize : QuantizeModes.None,
        RefuseEmulatedPrecision = forServing,
        QuantizeExclude = config.Body.QuantizeExclude,
    });

    /// <summary>
    /// The body adapter of a LoRA head folder, as the head's section says to serve it: <c>serve</c> gives the adapter
    /// (its update is added in the shared pass), <c>merge</c> a private copy of <paramref name="body"/> with the adapter
    /// merged in (loaded as served: packed, quantized as the deployment says). (null, null) for any other weights.
    /// A bad adapter throws <see cref="HeadConfigurationException"/> on the weights field.
    /// </summary>
    public static (Lora.LoraAdapter? Adapter, BertBody? Merged) LoadAdapter(HostConfig config, HeadSection section, string? weights, BertBody body)
    {
        if (weights is null || !Directory.Exists(weights)) return (null, null);
        Lora.LoraAdapter? adapter;
        try
        {
            adapter = Lora.LoraHeadFolder.Read(weights, body.Model);
        }
        catch (FormatException e)
        {
            throw new HeadConfigurationException("weights", e.Message);
        }
        if (adapter is null) return (null, null);
        if (section.Adapter != AdapterModes.Merge) return (adapter, null);
        using (adapter)
            return (null, LoadBody(config, body.Folder, forServing: true, mergeAdapter: adapter));
    }

    /// <summary>The checkpoint store heads get: it fingerprints task folders without a vocabulary with the body's.</summary>
    public static ICheckpointStore CheckpointStoreFor(BertBody body) => new CheckpointStore(Path.Combine(body.Folder, "vocab.txt"));

    /// <summary>What the head kind of <paramref name="section"/> is given to build the head.</summary>
    public HeadContext ContextFor(HeadSection section, BertBody body, ICheckpointStore store, ILoggerFactory loggers) => new()
    {
        Name = section.Name,
        Kind = section.Kind,
        Labels = section.Labels,
        WeightsPath = section.Weights,
        Options = section.Options,
        Body = body.Info,
        Tokenizer = body.Tokenizer,
        Checkpoints = store,
        Logger = loggers.CreateLogger($"BertHost.Heads.{section.Name}"),
        TruncateOversized = !string.Equals(Config.Host.Oversized, "refuse", StringComparison.OrdinalIgnoreCase),
    };
}
