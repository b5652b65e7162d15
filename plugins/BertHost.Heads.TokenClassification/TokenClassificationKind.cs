using System.Text.Json;
using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

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
        var yamlOptions = TokenClassificationOptions.Parse(context.Options, context.Body);
        var weights = WeightsSource.Load(context, yamlOptions);
        try
        {
            var options = weights.Options;
            var labels = HeadLabels.Resolve(context.Labels, weights.Labels, weights.Describe, weights.Tensors is null,
                "a fresh token-classification head needs labels: list them in the head's 'labels' (e.g. [O, B-PER, I-PER, B-LOC, I-LOC])");
            Validate(labels, weights);
            if (options.ClassWeights?.Weights is { } w && w.Count != labels.Count)
                throw new HeadConfigurationException("options.class_weights", $"class_weights has {w.Count} values but the head has {labels.Count} labels");
            var dropout = options.Dropout ?? weights.DefaultDropout ?? context.Body.HiddenDropoutProb;
            var module = new TokenClassificationModule(context.Body.HiddenSize * options.Layers.Count, options.HiddenSize, labels.Count, dropout, options.Activation);
            HeadWeights.PrepareModule(module, context.Body, weights.Tensors,
                () => module.InitializeFresh(context.Body.InitializerRange, context.Seed), weights.Describe, "check options.layers, options.hidden_size and the labels");
            HeadWeights.WarnIfStale(context, weights.TrainedOn);
            try
            {
                return new TokenClassificationHead(context, options, labels, dropout, module, weights.Kind, weights.TrainedOn);
            }
            catch   // the head checks the window options (stride vs max_length) and then owns nothing
            {
                module.Dispose();
                throw;
            }
        }
        finally
        {
            weights.DisposeTensors();
        }
    }

    private static void Validate(IReadOnlyList<string> labels, WeightsSource weights)
    {
        if (labels.Count < 2) throw new HeadConfigurationException("labels", $"a token-classification head needs at least 2 labels, got {labels.Count}");
        HeadLabels.CheckNames(labels);
        HeadLabels.CheckClassifierRows(weights.Describe, weights.ClassifierRows, labels);
    }
}

/// <summary>Where a head's weights come from: nothing (fresh), a head folder this plugin saved, or a HF BertForTokenClassification folder.</summary>
internal sealed class WeightsSource
{
    public const string Fresh = "fresh";
    public const string HeadFolder = "head-folder";
    public const string HuggingFace = "huggingface";

    public required string Kind { get; init; }
    public required string Describe { get; init; }
    public required TokenClassificationOptions Options { get; init; }
    public IReadOnlyList<string>? Labels { get; init; }
    public IReadOnlyDictionary<string, Tensor>? Tensors { get; init; }
    public string? TrainedOn { get; init; }
    public double? DefaultDropout { get; init; }
    public int? ClassifierRows => Tensors is not null && Tensors.TryGetValue("classifier.weight", out var w) ? (int)w.shape[0] : null;

    public void DisposeTensors() => HeadWeights.DisposeAll(Tensors);

    public static WeightsSource Load(HeadContext context, TokenClassificationOptions yamlOptions)
    {
        var path = context.WeightsPath;
        return HeadWeights.Locate(path, "BertForTokenClassification") switch
        {
            WeightsLocation.HeadFolder => LoadHeadFolder(context, path!, yamlOptions),
            WeightsLocation.HuggingFace => LoadHuggingFace(context, path!, yamlOptions),
            _ => new WeightsSource { Kind = Fresh, Describe = "fresh weights", Options = yamlOptions },
        };
    }

    private static WeightsSource LoadHeadFolder(HeadContext context, string folder, TokenClassificationOptions yamlOptions)
    {
        var manifest = HeadWeights.ReadManifest(folder, TokenClassificationKind.KindName);

        var saved = HeadOptions.ParseSaved(folder, () => TokenClassificationOptions.Parse(JsonSerializer.SerializeToElement(manifest.Options), context.Body));
        HeadOptions.CheckSavedAgree(folder, TokenClassificationOptions.StructuralKeys.Where(yamlOptions.Given.Contains), yamlOptions.ValueOf, saved.ValueOf);
        var merged = HeadWeights.MergeOptions(manifest.Options, context.Options);
        var options = TokenClassificationOptions.Parse(merged, context.Body) with { Given = yamlOptions.Given };

        var tensors = HeadWeights.ReadTensors(context, folder);
        return new WeightsSource
        {
            Kind = HeadFolder, Describe = $"the head folder {folder}", Options = options, Labels = manifest.Labels,
            Tensors = tensors, TrainedOn = manifest.BodyFingerprint,
        };
    }

    private static WeightsSource LoadHuggingFace(HeadContext context, string folder, TokenClassificationOptions yamlOptions)
    {
        var model = HuggingFaceTaskModel.Open(context, folder, "BertForTokenClassification");
        // BertForTokenClassification: dropout + one Linear over the last hidden state.
        if (yamlOptions.Layers is not [-1])
            throw new HeadConfigurationException("options.layers", $"{folder} is a Hugging Face BertForTokenClassification: its classifier reads the last hidden state only, so layers must be [-1]");
        if (yamlOptions.HiddenSize is not null)
            throw new HeadConfigurationException("options.hidden_size", $"{folder} is a Hugging Face BertForTokenClassification: its classifier has no hidden layer");
        var tensors = model.ReadHeadTensors("classifier.");
        return new WeightsSource
        {
            Kind = HuggingFace, Describe = $"the Hugging Face model {folder}", Options = yamlOptions, Labels = model.Labels,
            Tensors = tensors, TrainedOn = context.Body.Fingerprint,
            DefaultDropout = model.Number("classifier_dropout") ?? model.Number("hidden_dropout_prob"),
        };
    }
}
