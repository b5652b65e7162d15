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
    /// <paramref name="prepack"/> asks for prepacked weights without the rest (a frozen body computing training features).
    public static BertBody LoadBody(HostConfig config, bool forServing = false, bool prepack = false) => BertBody.Load(config.Body.Checkpoint, new BodyOptions
    {
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
