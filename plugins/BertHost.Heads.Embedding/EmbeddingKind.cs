using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;

namespace BertHost.Heads.Embedding;

/// <summary>
/// <c>kind: embedding</c>: one vector per text, pooled from the body's token states (mean pooling and L2 normalisation
/// by default: how sentence-transformers models such as all-MiniLM-L6-v2 are meant to be used), optionally cut to its
/// first <c>dimensions</c> values and normalised again (Matryoshka-style). It has no parameters and no training; it
/// serves the body's own embeddings through every route (own, OpenAI, TEI, KServe) and the shared batching.
/// </summary>
public sealed class EmbeddingKind : IHeadKind
{
    public const string KindName = "embedding";

    public string Name => KindName;

    public string Description => "Text embeddings: the body's token states pooled (mean, cls, max or pooler), optionally cut to fewer dimensions, L2-normalised";

    public IReadOnlyList<HeadConfigurationException> Validate(HeadValidationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var problems = new List<HeadConfigurationException>();
        if (context.Labels is { Count: > 0 }) problems.Add(LabelsGiven());
        if (context.WeightsPath is not null) problems.Add(WeightsGiven());
        problems.AddRange(HeadValidation.Options(context.Options, EmbeddingOptions.Keys, "an embedding head", o => EmbeddingOptions.Parse(o, context.Body), out _));
        return problems;
    }

    private static HeadConfigurationException LabelsGiven() => new("labels", "an embedding head has no labels; remove 'labels'");

    private static HeadConfigurationException WeightsGiven() =>
        new("weights", "an embedding head has no weights of its own (it pools the body's states); remove 'weights'");

    public IHead Create(HeadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Labels is { Count: > 0 })
            throw LabelsGiven();
        if (context.WeightsPath is not null)
            throw WeightsGiven();
        var options = EmbeddingOptions.Parse(context.Options, context.Body);
        if (options.Pooling == PoolingMode.Pooler && !context.Body.HasPooler)
            throw new HeadConfigurationException("options.pooling",
                "pooling 'pooler' needs the body's pooler, but the served body has no pooler weights; use pooling mean, cls or max");
        return new EmbeddingHead(context, options);
    }
}
