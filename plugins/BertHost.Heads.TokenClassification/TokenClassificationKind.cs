using System.Text.Json;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;

namespace BertHost.Heads.TokenClassification;

/// <summary>
/// <c>kind: token-classification</c>: one label per token (named entities, BIO or IOB1 tags), like transformers'
/// token-classification ("ner") pipeline over a BertForTokenClassification.
/// </summary>
public sealed class TokenClassificationKind : IHeadKind
{
    public const string KindName = "token-classification";

    public string Name => KindName;

    public string Description => "Token classification (named entities with BIO/IOB1 tags; entity grouping; long texts in overlapping windows)";

    public IHead Create(HeadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return Weights.Create(context, weights =>
        {
            var options = weights.Options;
            var labels = weights.ResolveLabels(context, FreshHint);
            CheckLabels(options, labels);
            HeadLabels.CheckClassifierRows(weights.Describe, weights.Rows("classifier.weight"), labels);
            var dropout = options.Dropout ?? weights.DefaultDropout ?? context.Body.HiddenDropoutProb;
            var module = new TokenClassificationModule(context.Body.HiddenSize * options.Layers.Count, options.HiddenSize, labels.Count, dropout, options.Activation);
            weights.Prepare(context, module, module.InitializeFresh, "check options.layers, options.hidden_size and the labels");
            try
            {
                return new TokenClassificationHead(context, options, labels, dropout, module, weights.Origin);
            }
            catch   // the head checks the window options (stride vs max_length) and then owns nothing
            {
                module.Dispose();
                throw;
            }
        });
    }

    private static readonly TokenClassificationWeights Weights = new();

    public IReadOnlyList<HeadConfigurationException> Validate(HeadValidationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var problems = HeadValidation.OptionsAndLabels(context, TokenClassificationOptions.Keys, "a token-classification head",
            o => TokenClassificationOptions.Parse(o, context.Body), FreshHint, new TokenClassificationOptions(), CheckLabels, out var options);
        // The windows' stride against the head's length (the head checks it when built).
        if (options is not null)
            HeadValidation.Collect(problems, () => TokenClassificationHead.CheckStride(options, Math.Min(options.MaxLength ?? int.MaxValue, context.Body.MaxSequenceLength)));
        return problems;
    }

    private const string FreshHint = "a fresh token-classification head needs labels: list them in the head's 'labels' (e.g. [O, B-PER, I-PER, B-LOC, I-LOC])";

    private static void CheckLabels(TokenClassificationOptions options, IReadOnlyList<string> labels)
    {
        if (labels.Count < 2) throw new HeadConfigurationException("labels", $"a token-classification head needs at least 2 labels, got {labels.Count}");
        HeadLabels.CheckNames(labels);
        if (options.ClassWeights?.Weights is { } w && w.Count != labels.Count)
            throw new HeadConfigurationException("options.class_weights", $"class_weights has {w.Count} values but the head has {labels.Count} labels");
    }
}

/// <summary>Where a token-classification head's weights come from: nothing (fresh), a head folder this plugin saved, or a HF BertForTokenClassification folder.</summary>
internal sealed class TokenClassificationWeights() : HeadWeightsImport<TokenClassificationOptions>(TokenClassificationKind.KindName,
    "BertForTokenClassification", "classifier.", new(TokenClassificationOptions.StructuralKeys, o => o.Given, (o, given) => o with { Given = given }, (o, key) => o.ValueOf(key)))
{
    public override TokenClassificationOptions Parse(JsonElement options, BodyInfo body) => TokenClassificationOptions.Parse(options, body);

    protected override (TokenClassificationOptions Options, double? DefaultDropout) CheckHuggingFace(HeadContext context, HuggingFaceTaskModel model,
        TokenClassificationOptions yamlOptions)
    {
        // BertForTokenClassification: dropout + one Linear over the last hidden state.
        if (yamlOptions.Layers is not [-1])
            throw new HeadConfigurationException("options.layers", $"{model.Folder} is a Hugging Face BertForTokenClassification: its classifier reads the last hidden state only, so layers must be [-1]");
        if (yamlOptions.HiddenSize is not null)
            throw new HeadConfigurationException("options.hidden_size", $"{model.Folder} is a Hugging Face BertForTokenClassification: its classifier has no hidden layer");
        return (yamlOptions, model.Number("classifier_dropout") ?? model.Number("hidden_dropout_prob"));
    }
}
