using System.Text.Json;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;

namespace Company.Heads.TextScore;

/// <summary>
/// <c>kind: text-score</c>: one number per text or text pair (a rating, a similarity), trained by regression. The host
/// finds this class because it is public, implements <see cref="IHeadKind"/> and has a parameterless constructor.
/// </summary>
public sealed class TextScoreKind : IHeadKind
{
    public const string KindName = "text-score";

    public string Name => KindName;

    public string Description => "A score per text or text pair (regression)";

    private static readonly TextScoreWeights Weights = new();

    public IHead Create(HeadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Labels is { Count: > 0 }) throw LabelsGiven();
        // Fresh, a head folder this plugin saved, or a Hugging Face folder: the SDK finds and reads the weights.
        return Weights.Create(context, weights =>
        {
            var options = weights.Options;
            if (options.Pooling == PoolingMode.Pooler && !context.Body.HasPooler)
                throw new HeadConfigurationException("options.pooling", "pooling 'pooler' needs the body's pooler, which this body lacks; use mean, cls or max");
            // Dropout + Linear(H, 1) named 'classifier', as a one-label BertForSequenceClassification (which then imports by name).
            var module = new LinearHead("classifier", context.Body.HiddenSize, 1, options.Dropout);
            weights.Prepare(context, module, module.InitializeFresh, "check options and the weights' head kind");
            return new TextScoreHead(context, options, module, weights.Origin);
        });
    }

    /// <summary>What <c>berthost validate</c> reports for a head of this kind: every problem of its options and labels.</summary>
    public IReadOnlyList<HeadConfigurationException> Validate(HeadValidationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var problems = HeadValidation.Options(context.Options, TextScoreOptions.Keys, "a text-score head", TextScoreOptions.Parse, out _);
        if (context.Labels is { Count: > 0 }) problems.Add(LabelsGiven());
        return problems;
    }

    private static HeadConfigurationException LabelsGiven() => new("labels", "a text-score head has no labels (it outputs a number); remove 'labels'");

    /// <summary>The weights a head starts from; a regression BertForSequenceClassification imports (its 'classifier').</summary>
    private sealed class TextScoreWeights() : HeadWeightsImport<TextScoreOptions>(KindName, "BertForSequenceClassification", "classifier.")
    {
        public override TextScoreOptions Parse(JsonElement options, BodyInfo body) => TextScoreOptions.Parse(options);
    }
}
