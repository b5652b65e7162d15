using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;

namespace BertHost.Heads.QuestionAnswering;

/// <summary>
/// <c>kind: question-answering</c>: extractive QA (an answer span of the context), like transformers'
/// question-answering pipeline over a BertForQuestionAnswering. No labels.
/// </summary>
public sealed class QuestionAnsweringKind : IHeadKind
{
    public const string KindName = "question-answering";

    public string Name => KindName;

    public string Description => "Extractive question answering: the answer span of a context (SQuAD v1.1 / v2.0 style), long contexts in windows";

    public IHead Create(HeadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Labels is { Count: > 0 })
            throw LabelsGiven();
        return Weights.Create(context, weights =>
        {
            var options = weights.Options;
            CheckMaxLength(options, context.Body);
            var module = new QuestionAnsweringModule(context.Body.HiddenSize, options.Dropout);
            weights.Prepare(context, module, module.InitializeFresh);
            return new QuestionAnsweringHead(context, options, module, weights.Origin);
        });
    }

    private static readonly QuestionAnsweringWeights Weights = new();

    public IReadOnlyList<HeadConfigurationException> Validate(HeadValidationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var problems = new List<HeadConfigurationException>();
        if (context.Labels is { Count: > 0 }) problems.Add(LabelsGiven());
        problems.AddRange(HeadValidation.Options(context.Options, QuestionAnsweringOptions.Keys, "a question-answering head", QuestionAnsweringOptions.Parse, out var options));
        if (options is not null) HeadValidation.Collect(problems, () => CheckMaxLength(options, context.Body));
        return problems;
    }

    private static HeadConfigurationException LabelsGiven() =>
        new("labels", "a question-answering head has no labels (answers are spans of the context); remove labels");

    private static void CheckMaxLength(QuestionAnsweringOptions options, BodyInfo body)
    {
        if ((options.MaxLength ?? body.MaxSequenceLength) < 8)
            throw new HeadConfigurationException("options.max_length", $"max_length must be at least 8, got {options.MaxLength}");
    }
}

/// <summary>Where a QA head's weights come from: nothing (fresh), a head folder this plugin saved, or a HF BertForQuestionAnswering.</summary>
internal sealed class QuestionAnsweringWeights()
    : HeadWeightsImport<QuestionAnsweringOptions>(QuestionAnsweringKind.KindName, "BertForQuestionAnswering", "qa_outputs.")
{
    public override QuestionAnsweringOptions Parse(JsonElement options, BodyInfo body) => QuestionAnsweringOptions.Parse(options);

    protected override QuestionAnsweringOptions HeadFolderOptions(HeadContext context, string folder, HeadManifest manifest, QuestionAnsweringOptions yaml)
    {
        // The saved options, overridden by the configuration's (none of them changes what the weights mean).
        var merged = HeadWeights.MergeOptions(manifest.Options, context.Options);
        // The YAML options were checked before: a problem here is the saved ones' fault.
        return HeadOptions.ParseSaved(folder, () => QuestionAnsweringOptions.Parse(merged));
    }

    protected override (QuestionAnsweringOptions Options, double? DefaultDropout) CheckHuggingFace(HeadContext context, HuggingFaceTaskModel model,
        QuestionAnsweringOptions yamlOptions)
    {
        var architectures = model.Config["architectures"] as JsonArray;
        if (architectures is { Count: > 0 } && !architectures.Any(a => a is JsonValue v && v.TryGetValue<string>(out var s) && s.EndsWith("ForQuestionAnswering", StringComparison.Ordinal)))
            throw new HeadConfigurationException("weights",
                $"{model.Folder} is a {string.Join(", ", architectures)} model, not a BertForQuestionAnswering (its config.json architectures)");
        return (yamlOptions, null);
    }
}
