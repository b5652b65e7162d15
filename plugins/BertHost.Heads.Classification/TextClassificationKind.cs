using BertHost.Abstractions;
using System.Text.Json;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;

namespace BertHost.Heads.Classification;

/// <summary>
/// <c>kind: text-classification</c>: one label (or several, multi_label) per text or text pair, like transformers'
/// text-classification pipeline over a BertForSequenceClassification.
/// </summary>
public sealed class TextClassificationKind : IHeadKind
{
    public const string KindName = "text-classification";

    public string Name => KindName;

    public string Description => "Sequence classification of a text or text pair (sentiment, paraphrase, topic; single- or multi-label)";

    public IHead Create(HeadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return Weights.Create(context, weights =>
        {
            var options = weights.Options;
            var labels = weights.ResolveLabels(context, FreshHint);
            Validate(context, options, labels, weights);

            var dropout = options.Dropout ?? weights.DefaultDropout ?? context.Body.HiddenDropoutProb;
            var module = new ClassificationModule(context.Body.HiddenSize, options.HiddenLayers, labels.Count, dropout, options.Activation,
                attentionPooling: options.Pooling == PoolingMode.Attention);
            weights.Prepare(context, module, module.InitializeFresh, "check options.hidden_layers and the labels");
            return new ClassificationHead(context, options, labels, dropout, module, weights.Origin);
        });
    }

    private static readonly ClassificationWeights Weights = new();

    private const string FreshHint = "a fresh text-classification head needs labels: list them in the head's 'labels'";

    public IReadOnlyList<HeadConfigurationException> Validate(HeadValidationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return HeadValidation.OptionsAndLabels(context, ClassificationOptions.Keys, "a text-classification head",
            o => ClassificationOptions.Parse(o, context.Body), FreshHint, new ClassificationOptions(), CheckLabels, out _);
    }

    private static void Validate(HeadContext context, ClassificationOptions options, IReadOnlyList<string> labels, LoadedWeights<ClassificationOptions> weights)
    {
        CheckLabels(options, labels);
        if (options.Pooling == PoolingMode.Pooler && !context.Body.HasPooler)
            throw new HeadConfigurationException("options.pooling",
                $"pooling 'pooler' needs the body's pooler, but the body ({context.Body.ModelFolder}) has no pooler weights; use pooling cls, mean or max");
        HeadLabels.CheckClassifierRows(weights.Describe, weights.Rows("classifier.weight"), labels);
    }

    /// <summary>What the labels must be for these options (count, names, one class weight each).</summary>
    private static void CheckLabels(ClassificationOptions options, IReadOnlyList<string> labels)
    {
        var min = options.ProblemType == ProblemType.MultiLabel ? 1 : 2;
        if (labels.Count < min)
            throw new HeadConfigurationException("labels", $"a {ClassificationOptions.Name(options.ProblemType)} head needs at least {min} labels, got {labels.Count}");
        HeadLabels.CheckNames(labels);
        if (options.ClassWeights?.Weights is { } w && w.Count != labels.Count)
            throw new HeadConfigurationException("options.class_weights", $"class_weights has {w.Count} values but the head has {labels.Count} labels");
        if (options.ClassWeights is { Balanced: true } && options.ProblemType == ProblemType.MultiLabel)
            throw new HeadConfigurationException("options.class_weights", "class_weights \"balanced\" needs problem_type single_label; give one weight per label");
    }
}

/// <summary>
/// Where a text-classification head's weights come from: nothing (fresh), a head folder this plugin saved, or a Hugging
/// Face BertForSequenceClassification (whose classifier reads the pooler and has no hidden layers).
/// </summary>
internal sealed class ClassificationWeights() : HeadWeightsImport<ClassificationOptions>(TextClassificationKind.KindName,
    "BertForSequenceClassification", "classifier.", new(ClassificationOptions.StructuralKeys, o => o.Given, (o, given) => o with { Given = given }, ValueOf))
{
    public override ClassificationOptions Parse(JsonElement options, BodyInfo body) => ClassificationOptions.Parse(options, body);

    private static string ValueOf(ClassificationOptions o, string key) => key switch
    {
        "pooling" => ClassificationOptions.Name(o.Pooling),
        "hidden_layers" => $"[{string.Join(", ", o.HiddenLayers)}]",
        "activation" => ClassificationOptions.Name(o.Activation),
        "problem_type" => ClassificationOptions.Name(o.ProblemType),
        "layer" => o.Layer.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => "",
    };

    protected override (ClassificationOptions Options, double? DefaultDropout) CheckHuggingFace(HeadContext context, HuggingFaceTaskModel model,
        ClassificationOptions yamlOptions)
    {
        var folder = model.Folder;
        // BertForSequenceClassification pools with the pooler and has a single Linear on top.
        if (yamlOptions.Pooling != PoolingMode.Pooler)
            throw new HeadConfigurationException("options.pooling", $"{folder} is a Hugging Face BertForSequenceClassification: its classifier reads the pooler output, so pooling must be 'pooler'");
        if (yamlOptions.HiddenLayers.Count > 0)
            throw new HeadConfigurationException("options.hidden_layers", $"{folder} is a Hugging Face BertForSequenceClassification: its classifier has no hidden layers");

        var options = yamlOptions;
        if (model.String("problem_type") is { } problem)
        {
            if (problem == "regression")
                throw new HeadConfigurationException("weights", $"{folder} is a regression model (problem_type regression), which a text-classification head does not serve");
            var stored = ClassificationOptions.ParseProblemType("weights", problem);
            if (yamlOptions.Given.Contains("problem_type") && stored != yamlOptions.ProblemType)
                throw new HeadConfigurationException("options.problem_type",
                    $"{folder} was trained as {ClassificationOptions.Name(stored)} (config.json problem_type), the configuration says {ClassificationOptions.Name(yamlOptions.ProblemType)}");
            options = options with { ProblemType = stored };
        }
        return (options, model.Number("classifier_dropout"));
    }
}
