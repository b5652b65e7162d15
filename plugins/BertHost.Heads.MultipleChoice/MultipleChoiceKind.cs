using System.Text.Json;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;

namespace BertHost.Heads.MultipleChoice;

/// <summary>
/// <c>kind: multiple-choice</c>: picks one of several candidate continuations/answers of a context, like transformers'
/// BertForMultipleChoice (SWAG, RACE, ARC...). Every choice is one body row; the head scores each row and softmaxes
/// over the rows of one input.
/// </summary>
public sealed class MultipleChoiceKind : IHeadKind
{
    public const string KindName = "multiple-choice";

    public string Name => KindName;

    public string Description => "Multiple choice: the best of several choices for a context (SWAG-style; BertForMultipleChoice)";

    public IHead Create(HeadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Labels is { Count: > 0 })
            throw LabelsGiven();
        return Weights.Create(context, weights =>
        {
            var options = weights.Options;
            if (options.Pooling == PoolingMode.Pooler && !context.Body.HasPooler)
                throw new HeadConfigurationException("options.pooling",
                    $"pooling 'pooler' needs the body's pooler, but the body ({context.Body.ModelFolder}) has no pooler weights; use pooling cls or mean");

            var dropout = options.Dropout ?? weights.DefaultDropout ?? context.Body.HiddenDropoutProb;
            var module = new MultipleChoiceModule(context.Body.HiddenSize, dropout, attentionPooling: options.Pooling == PoolingMode.Attention);
            weights.Prepare(context, module, module.InitializeFresh);
            return new MultipleChoiceHead(context, options, dropout, module, weights.Origin);
        });
    }

    private static readonly MultipleChoiceWeights Weights = new();

    public IReadOnlyList<HeadConfigurationException> Validate(HeadValidationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var problems = new List<HeadConfigurationException>();
        if (context.Labels is { Count: > 0 }) problems.Add(LabelsGiven());
        problems.AddRange(HeadValidation.Options(context.Options, MultipleChoiceOptions.Keys, "a multiple-choice head", MultipleChoiceOptions.Parse, out _));
        return problems;
    }

    private static HeadConfigurationException LabelsGiven() =>
        new("labels", "a multiple-choice head has no labels (its choices come with each input); remove 'labels'");
}

/// <summary>Where a head's weights come from: nothing (fresh), a head folder this plugin saved, or a HF BertForMultipleChoice.</summary>
internal sealed class MultipleChoiceWeights() : HeadWeightsImport<MultipleChoiceOptions>(MultipleChoiceKind.KindName,
    "BertForMultipleChoice", "classifier.",
    // The only structural key is pooling.
    new(MultipleChoiceOptions.StructuralKeys, o => o.Given, (o, given) => o with { Given = given }, (o, _) => MultipleChoiceOptions.Name(o.Pooling)))
{
    public override MultipleChoiceOptions Parse(JsonElement options, BodyInfo body) => MultipleChoiceOptions.Parse(options);

    protected override (MultipleChoiceOptions Options, double? DefaultDropout) CheckHuggingFace(HeadContext context, HuggingFaceTaskModel model,
        MultipleChoiceOptions yamlOptions)
    {
        // BertForMultipleChoice scores the pooler output with a single Linear(H, 1).
        if (yamlOptions.Pooling != PoolingMode.Pooler)
            throw new HeadConfigurationException("options.pooling",
                $"{model.Folder} is a Hugging Face BertForMultipleChoice: its classifier reads the pooler output, so pooling must be 'pooler'");
        return (yamlOptions, model.Number("classifier_dropout"));
    }
}
