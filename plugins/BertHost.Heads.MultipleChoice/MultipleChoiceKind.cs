using System.Text.Json;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

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
            throw new HeadConfigurationException("labels", "a multiple-choice head has no labels (its choices come with each input); remove 'labels'");
        var yamlOptions = MultipleChoiceOptions.Parse(context.Options);
        var weights = McWeightsSource.Load(context, yamlOptions);
        try
        {
            var options = weights.Options;
            if (options.Pooling == PoolingMode.Pooler && !context.Body.HasPooler)
                throw new HeadConfigurationException("options.pooling",
                    $"pooling 'pooler' needs the body's pooler, but the body ({context.Body.ModelFolder}) has no pooler weights; use pooling cls or mean");

            var dropout = options.Dropout ?? weights.DefaultDropout ?? context.Body.HiddenDropoutProb;
            var module = new MultipleChoiceModule(context.Body.HiddenSize, dropout, attentionPooling: options.Pooling == PoolingMode.Attention);
            HeadWeights.PrepareModule(module, context.Body, weights.Tensors,
                () => module.InitializeFresh(context.Body.InitializerRange, context.Seed), weights.Describe);

            HeadWeights.WarnIfStale(context, weights.TrainedOn);
            return new MultipleChoiceHead(context, options, dropout, module, weights.Kind, weights.TrainedOn);
        }
        finally
        {
            weights.DisposeTensors();
        }
    }
}

/// <summary>Where a head's weights come from: nothing (fresh), a head folder this plugin saved, or a HF BertForMultipleChoice.</summary>
internal sealed class McWeightsSource
{
    public const string Fresh = "fresh";
    public const string HeadFolder = "head-folder";
    public const string HuggingFace = "huggingface";

    public required string Kind { get; init; }
    public required string Describe { get; init; }
    public required MultipleChoiceOptions Options { get; init; }
    public IReadOnlyDictionary<string, Tensor>? Tensors { get; init; }
    public string? TrainedOn { get; init; }
    public double? DefaultDropout { get; init; }

    public void DisposeTensors() => HeadWeights.DisposeAll(Tensors);

    public static McWeightsSource Load(HeadContext context, MultipleChoiceOptions yamlOptions)
    {
        var path = context.WeightsPath;
        return HeadWeights.Locate(path, "BertForMultipleChoice") switch
        {
            WeightsLocation.HeadFolder => LoadHeadFolder(context, path!, yamlOptions),
            WeightsLocation.HuggingFace => LoadHuggingFace(context, path!, yamlOptions),
            _ => new McWeightsSource { Kind = Fresh, Describe = "fresh weights", Options = yamlOptions },
        };
    }

    private static McWeightsSource LoadHeadFolder(HeadContext context, string folder, MultipleChoiceOptions yamlOptions)
    {
        var manifest = HeadWeights.ReadManifest(folder, MultipleChoiceKind.KindName);

        // Options: the saved ones, overridden by the configuration's; what changes the meaning of the weights must agree.
        var saved = HeadOptions.ParseSaved(folder, () => MultipleChoiceOptions.Parse(JsonSerializer.SerializeToElement(manifest.Options)));
        HeadOptions.CheckSavedAgree(folder, MultipleChoiceOptions.StructuralKeys.Where(yamlOptions.Given.Contains),
            _ => MultipleChoiceOptions.Name(yamlOptions.Pooling), _ => MultipleChoiceOptions.Name(saved.Pooling));
        var merged = HeadWeights.MergeOptions(manifest.Options, context.Options);
        var options = MultipleChoiceOptions.Parse(merged) with { Given = yamlOptions.Given };

        var tensors = HeadWeights.ReadTensors(context, folder);
        return new McWeightsSource
        {
            Kind = HeadFolder, Describe = $"the head folder {folder}", Options = options, Tensors = tensors, TrainedOn = manifest.BodyFingerprint,
        };
    }

    private static McWeightsSource LoadHuggingFace(HeadContext context, string folder, MultipleChoiceOptions yamlOptions)
    {
        var model = HuggingFaceTaskModel.Open(context, folder, "BertForMultipleChoice");
        // BertForMultipleChoice scores the pooler output with a single Linear(H, 1).
        if (yamlOptions.Pooling != PoolingMode.Pooler)
            throw new HeadConfigurationException("options.pooling",
                $"{folder} is a Hugging Face BertForMultipleChoice: its classifier reads the pooler output, so pooling must be 'pooler'");
        var tensors = model.ReadHeadTensors("classifier.");
        return new McWeightsSource
        {
            Kind = HuggingFace, Describe = $"the Hugging Face model {folder}", Options = yamlOptions, Tensors = tensors,
            TrainedOn = context.Body.Fingerprint, DefaultDropout = model.Number("classifier_dropout"),
        };
    }
}
