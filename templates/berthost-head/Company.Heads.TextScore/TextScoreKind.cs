using System.Text.Json;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;

namespace Company.Heads.TextScore;

/// <summary>
/// <c>kind: text-score</c>: one number per text or text pair (a rating, a similarity), trained by regression. The host
/// finds this class because it is public, implements <see cref="IHeadKind"/> (through <see cref="TaskHeadKind{TOptions}"/>)
/// and has a parameterless constructor. Its weights: fresh, a head folder this plugin saved, or a Hugging Face
/// BertForSequenceClassification with one label (a regression model; its 'classifier' layer is this head's).
/// </summary>
public sealed class TextScoreKind()
    : TaskHeadKind<TextScoreOptions>(KindName, "A score per text or text pair (regression)", "BertForSequenceClassification", "classifier.")
{
    public const string KindName = "text-score";

    public override TextScoreOptions Parse(JsonElement options, BodyInfo body) => TextScoreOptions.Parse(options);

    protected override IReadOnlyList<string> OptionKeys => TextScoreOptions.Keys;

    protected override IHead Build(HeadContext context, LoadedWeights<TextScoreOptions> weights)
    {
        if (context.Labels is { Count: > 0 }) throw LabelsGiven();
        var options = weights.Options;
        if (options.Pooling == PoolingMode.Pooler && !context.Body.HasPooler)
            throw new HeadConfigurationException("options.pooling", "pooling 'pooler' needs the body's pooler, which this body lacks; use mean, cls or max");
        var module = new LinearHead("classifier", context.Body.HiddenSize, 1, options.Dropout);
        weights.Prepare(context, module, module.InitializeFresh, "check options and the weights' head kind");
        return new TextScoreHead(context, options, module, weights.Origin);
    }

    /// <summary>What <c>berthost validate</c> reports for a head of this kind: every problem of its options, and labels given.</summary>
    public override IReadOnlyList<HeadConfigurationException> Validate(HeadValidationContext context)
    {
        var problems = base.Validate(context).ToList();
        if (context.Labels is { Count: > 0 }) problems.Add(LabelsGiven());
        return problems;
    }

    private static HeadConfigurationException LabelsGiven() => new("labels", "a text-score head has no labels (it outputs a number); remove 'labels'");
}
