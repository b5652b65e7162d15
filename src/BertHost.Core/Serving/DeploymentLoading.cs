using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Config;
using Microsoft.Extensions.Logging;
using BertHost.Core.Body;

namespace BertHost.Core.Serving;

/// <summary>How a deployment's body and heads are built, shared by serving and training so both see the same heads.</summary>
public static class DeploymentLoading
{
    /// <summary>
    /// The body of a deployment; a body that does not load throws <see cref="BodyLoadException"/>. Only a body loaded
    /// <paramref name="forServing"/> gets prepacked weights (<c>body.prepack_weights</c>) and int8 projections
    /// (<c>body.quantize</c>): a body about to be trained would pay their memory for nothing.
    /// </summary>
    /// <param name="mergeAdapter">A LoRA adapter to merge into the weights before they are packed (a private body for an <c>adapter: merge</c> head).</param>
    public static BertBody LoadBody(HostConfig config, bool forServing = false, Lora.LoraAdapter? mergeAdapter = null) => BertBody.Load(config.Body.Checkpoint, new BodyOptions
    {
        MergeAdapter = mergeAdapter,
        Device = config.Body.Device,
        DType = config.Body.DType,
        MaxSequenceLength = config.Body.MaxSequenceLength,
        PrepackWeights = forServing && config.Body.PrepackWeights,
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
            return (null, LoadBody(config with { Body = config.Body with { Checkpoint = body.Folder } }, forServing: true, mergeAdapter: adapter));
    }

    /// <summary>The checkpoint store heads get: it fingerprints task folders without a vocabulary with the body's.</summary>
    public static ICheckpointStore CheckpointStoreFor(BertBody body) => new CheckpointStore(Path.Combine(body.Folder, "vocab.txt"));

    /// <summary>What the head kind of <paramref name="section"/> is given to build the head.</summary>
    public static HeadContext ContextFor(HostConfig config, HeadSection section, BertBody body, ICheckpointStore store, ILoggerFactory loggers) => new()
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
        TruncateOversized = !string.Equals(config.Host.Oversized, "refuse", StringComparison.OrdinalIgnoreCase),
    };
}
