using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

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
            throw new HeadConfigurationException("labels", "a question-answering head has no labels (answers are spans of the context); remove labels");
        var yamlOptions = QuestionAnsweringOptions.Parse(context.Options);
        var weights = QaWeights.Load(context, yamlOptions);
        try
        {
            var options = weights.Options;
            if ((options.MaxLength ?? context.Body.MaxSequenceLength) < 8)
                throw new HeadConfigurationException("options.max_length", $"max_length must be at least 8, got {options.MaxLength}");
            var module = new QuestionAnsweringModule(context.Body.HiddenSize, options.Dropout);
            HeadWeights.PrepareModule(module, context.Body, weights.Tensors,
                () => module.InitializeFresh(context.Body.InitializerRange, context.Seed), weights.Describe);
            HeadWeights.WarnIfStale(context, weights.TrainedOn);
            return new QuestionAnsweringHead(context, options, module, weights.Kind, weights.TrainedOn);
        }
        finally
        {
            weights.DisposeTensors();
        }
    }
}

/// <summary>Where a QA head's weights come from: nothing (fresh), a head folder this plugin saved, or a HF BertForQuestionAnswering.</summary>
internal sealed class QaWeights
{
    public required string Kind { get; init; }
    public required string Describe { get; init; }
    public required QuestionAnsweringOptions Options { get; init; }
    public IReadOnlyDictionary<string, Tensor>? Tensors { get; init; }
    public string? TrainedOn { get; init; }

    public void DisposeTensors() => HeadWeights.DisposeAll(Tensors);

    public static QaWeights Load(HeadContext context, QuestionAnsweringOptions yamlOptions)
    {
        var path = context.WeightsPath;
        return HeadWeights.Locate(path, "BertForQuestionAnswering") switch
        {
            WeightsLocation.HeadFolder => LoadHeadFolder(context, path!),
            WeightsLocation.HuggingFace => LoadHuggingFace(context, path!, yamlOptions),
            _ => new QaWeights { Kind = "fresh", Describe = "fresh weights", Options = yamlOptions },
        };
    }

    private static QaWeights LoadHeadFolder(HeadContext context, string folder)
    {
        var manifest = HeadWeights.ReadManifest(folder, QuestionAnsweringKind.KindName);

        // The saved options, overridden by the configuration's (none of them changes what the weights mean).
        var merged = HeadWeights.MergeOptions(manifest.Options, context.Options);
        // The YAML options were checked before: a problem here is the saved ones' fault.
        var options = HeadOptions.ParseSaved(folder, () => QuestionAnsweringOptions.Parse(merged));

        var tensors = HeadWeights.ReadTensors(context, folder);
        return new QaWeights
        {
            Kind = "head-folder", Describe = $"the head folder {folder}", Options = options, Tensors = tensors, TrainedOn = manifest.BodyFingerprint,
        };
    }

    private static QaWeights LoadHuggingFace(HeadContext context, string folder, QuestionAnsweringOptions yamlOptions)
    {
        var model = HuggingFaceTaskModel.Open(context, folder, "BertForQuestionAnswering");
        var architectures = model.Config["architectures"] as JsonArray;
        if (architectures is { Count: > 0 } && !architectures.Any(a => a is JsonValue v && v.TryGetValue<string>(out var s) && s.EndsWith("ForQuestionAnswering", StringComparison.Ordinal)))
            throw new HeadConfigurationException("weights",
                $"{folder} is a {string.Join(", ", architectures)} model, not a BertForQuestionAnswering (its config.json architectures)");
        var tensors = model.ReadHeadTensors("qa_outputs.");
        return new QaWeights
        {
            Kind = "huggingface", Describe = $"the Hugging Face model {folder}", Options = yamlOptions, Tensors = tensors,
            TrainedOn = context.Body.Fingerprint,
        };
    }
}
