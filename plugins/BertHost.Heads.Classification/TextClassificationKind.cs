using BertHost.Abstractions;
using System.Text.Json;
using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

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
        var yamlOptions = ClassificationOptions.Parse(context.Options, context.Body);
        var weights = WeightsSource.Load(context, yamlOptions);
        try
        {
            var options = weights.Options;
            var labels = HeadLabels.Resolve(context.Labels, weights.Labels, weights.Describe, weights.Tensors is null,
                "a fresh text-classification head needs labels: list them in the head's 'labels'");
            Validate(context, options, labels, weights);

            var dropout = options.Dropout ?? weights.DefaultDropout ?? context.Body.HiddenDropoutProb;
            var module = new ClassificationModule(context.Body.HiddenSize, options.HiddenLayers, labels.Count, dropout, options.Activation,
                attentionPooling: options.Pooling == PoolingMode.Attention);
            HeadWeights.PrepareModule(module, context.Body, weights.Tensors,
                () => module.InitializeFresh(context.Body.InitializerRange, context.Seed), weights.Describe, "check options.hidden_layers and the labels");

            HeadWeights.WarnIfStale(context, weights.TrainedOn);
            return new ClassificationHead(context, options, labels, dropout, module, weights.Kind, weights.TrainedOn);
        }
        finally
        {
            weights.DisposeTensors();
        }
    }

    private static void Validate(HeadContext context, ClassificationOptions options, IReadOnlyList<string> labels, WeightsSource weights)
    {
        var min = options.ProblemType == ProblemType.MultiLabel ? 1 : 2;
        if (labels.Count < min)
            throw new HeadConfigurationException("labels", $"a {ClassificationOptions.Name(options.ProblemType)} head needs at least {min} labels, got {labels.Count}");
        HeadLabels.CheckNames(labels);
        if (options.Pooling == PoolingMode.Pooler && !context.Body.HasPooler)
            throw new HeadConfigurationException("options.pooling",
                $"pooling 'pooler' needs the body's pooler, but the body ({context.Body.ModelFolder}) has no pooler weights; use pooling cls, mean or max");
        if (options.ClassWeights?.Weights is { } w && w.Count != labels.Count)
            throw new HeadConfigurationException("options.class_weights", $"class_weights has {w.Count} values but the head has {labels.Count} labels");
        if (options.ClassWeights is { Balanced: true } && options.ProblemType == ProblemType.MultiLabel)
            throw new HeadConfigurationException("options.class_weights", "class_weights \"balanced\" needs problem_type single_label; give one weight per label");
        HeadLabels.CheckClassifierRows(weights.Describe, weights.ClassifierRows, labels);
    }
}

/// <summary>Where a head's weights come from: nothing (fresh), a head folder this plugin saved, or a HF task model.</summary>
internal sealed class WeightsSource
{
    public const string Fresh = "fresh";
    public const string HeadFolder = "head-folder";
    public const string HuggingFace = "huggingface";

    public required string Kind { get; init; }
    public required string Describe { get; init; }
    public required ClassificationOptions Options { get; init; }
    public IReadOnlyList<string>? Labels { get; init; }
    public IReadOnlyDictionary<string, Tensor>? Tensors { get; init; }
    public string? TrainedOn { get; init; }
    public double? DefaultDropout { get; init; }
    public int? ClassifierRows => Tensors is not null && Tensors.TryGetValue("classifier.weight", out var w) ? (int)w.shape[0] : null;

    public void DisposeTensors() => HeadWeights.DisposeAll(Tensors);

    public static WeightsSource Load(HeadContext context, ClassificationOptions yamlOptions)
    {
        var path = context.WeightsPath;
        return HeadWeights.Locate(path, "BertForSequenceClassification") switch
        {
            WeightsLocation.HeadFolder => LoadHeadFolder(context, path!, yamlOptions),
            WeightsLocation.HuggingFace => LoadHuggingFace(context, path!, yamlOptions),
            _ => new WeightsSource { Kind = Fresh, Describe = "fresh weights", Options = yamlOptions },
        };
    }

    private static WeightsSource LoadHeadFolder(HeadContext context, string folder, ClassificationOptions yamlOptions)
    {
        var manifest = HeadWeights.ReadManifest(folder, TextClassificationKind.KindName);

        // Options: the saved ones, overridden by the configuration's; what changes the meaning of the weights must agree.
        var saved = HeadOptions.ParseSaved(folder, () => ClassificationOptions.Parse(JsonSerializer.SerializeToElement(manifest.Options), context.Body));
        HeadOptions.CheckSavedAgree(folder, ClassificationOptions.StructuralKeys.Where(yamlOptions.Given.Contains),
            key => ValueOf(yamlOptions, key), key => ValueOf(saved, key));
        var merged = HeadWeights.MergeOptions(manifest.Options, context.Options);
        var options = ClassificationOptions.Parse(merged, context.Body) with { Given = yamlOptions.Given };

        var tensors = HeadWeights.ReadTensors(context, folder);
        return new WeightsSource
        {
            Kind = HeadFolder, Describe = $"the head folder {folder}", Options = options, Labels = manifest.Labels,
            Tensors = tensors, TrainedOn = manifest.BodyFingerprint,
        };
    }

    private static string ValueOf(ClassificationOptions o, string key) => key switch
    {
        "pooling" => ClassificationOptions.Name(o.Pooling),
        "hidden_layers" => $"[{string.Join(", ", o.HiddenLayers)}]",
        "activation" => ClassificationOptions.Name(o.Activation),
        "problem_type" => ClassificationOptions.Name(o.ProblemType),
        "layer" => o.Layer.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => "",
    };

    private static WeightsSource LoadHuggingFace(HeadContext context, string folder, ClassificationOptions yamlOptions)
    {
        var model = HuggingFaceTaskModel.Open(context, folder, "BertForSequenceClassification");

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

        var tensors = model.ReadHeadTensors("classifier.");
        return new WeightsSource
        {
            Kind = HuggingFace, Describe = $"the Hugging Face model {folder}", Options = options, Labels = model.Labels,
            Tensors = tensors, TrainedOn = context.Body.Fingerprint, DefaultDropout = model.Number("classifier_dropout"),
        };
    }
}
