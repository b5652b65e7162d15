using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using Microsoft.Extensions.Logging;
using TorchSharp;
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
            var module = new MultipleChoiceModule(context.Body.HiddenSize, dropout);
            try
            {
                if (weights.Tensors is null) module.InitializeFresh(context.Body.InitializerRange, context.Seed);
                else LoadTensors(module, weights);
                module.to(context.Body.Device).to(context.Body.DType);
                module.eval();
            }
            catch
            {
                module.Dispose();
                throw;
            }

            if (weights.TrainedOn is { } trainedOn && trainedOn != context.Body.Fingerprint)
                context.Logger.LogWarning(
                    "Head {Head}: the weights in {Weights} were trained on body {TrainedOn}, the served body is {Body}: the head is stale",
                    context.Name, context.WeightsPath, trainedOn, context.Body.Fingerprint);
            return new MultipleChoiceHead(context, options, dropout, module, weights.Kind, weights.TrainedOn);
        }
        finally
        {
            weights.DisposeTensors();
        }
    }

    private static void LoadTensors(MultipleChoiceModule module, McWeightsSource weights)
    {
        var parameters = module.state_dict();
        var stored = weights.Tensors!;
        var missing = parameters.Keys.Where(k => !stored.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var unexpected = stored.Keys.Where(k => !parameters.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var wrong = parameters.Where(p => stored.TryGetValue(p.Key, out var t) && !t.shape.SequenceEqual(p.Value.shape))
            .Select(p => $"{p.Key} is [{string.Join(",", stored[p.Key].shape)}], the head expects [{string.Join(",", p.Value.shape)}]").ToList();
        if (missing.Count + unexpected.Count + wrong.Count > 0)
        {
            var problems = new List<string>();
            if (missing.Count > 0) problems.Add($"missing {string.Join(", ", missing)}");
            if (unexpected.Count > 0) problems.Add($"unexpected {string.Join(", ", unexpected)}");
            problems.AddRange(wrong);
            throw new HeadConfigurationException("weights", $"{weights.Describe} does not match this head ({string.Join("; ", problems)})");
        }
        using var noGrad = no_grad();
        foreach (var (name, parameter) in parameters) parameter.copy_(stored[name]);
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

    public void DisposeTensors()
    {
        if (Tensors is null) return;
        foreach (var t in Tensors.Values) t.Dispose();
    }

    public static McWeightsSource Load(HeadContext context, MultipleChoiceOptions yamlOptions)
    {
        var path = context.WeightsPath;
        if (path is null) return new McWeightsSource { Kind = Fresh, Describe = "fresh weights", Options = yamlOptions };
        if (File.Exists(path))
            throw new HeadConfigurationException("weights", $"{path} is a file; weights must be a head folder (head.json + head.safetensors) or a Hugging Face BertForMultipleChoice folder");
        if (!Directory.Exists(path))
            throw new HeadConfigurationException("weights", $"{path} does not exist");
        if (File.Exists(Path.Combine(path, HeadManifest.FileName))) return LoadHeadFolder(context, path, yamlOptions);
        if (HuggingFaceTaskModel.IsModelFolder(path)) return LoadHuggingFace(context, path, yamlOptions);
        throw new HeadConfigurationException("weights",
            $"{path} is neither a head folder ({HeadManifest.FileName} + {HeadManifest.WeightsFileName}) nor a Hugging Face model folder (config.json + weights)");
    }

    private static McWeightsSource LoadHeadFolder(HeadContext context, string folder, MultipleChoiceOptions yamlOptions)
    {
        var manifestPath = Path.Combine(folder, HeadManifest.FileName);
        HeadManifest manifest;
        try
        {
            manifest = HeadManifest.Read(manifestPath);
        }
        catch (Exception e) when (e is FormatException or IOException or InvalidOperationException)
        {
            throw new HeadConfigurationException("weights", $"{manifestPath}: {e.Message}");
        }
        if (manifest.Kind != MultipleChoiceKind.KindName)
            throw new HeadConfigurationException("weights", $"{folder} holds a '{manifest.Kind}' head, not a {MultipleChoiceKind.KindName} head");

        // Options: the saved ones, overridden by the configuration's; what changes the meaning of the weights must agree.
        MultipleChoiceOptions saved;
        try
        {
            saved = MultipleChoiceOptions.Parse(JsonSerializer.SerializeToElement(manifest.Options));
        }
        catch (HeadConfigurationException e)
        {
            throw new HeadConfigurationException("weights", $"{manifestPath}: {e.Message}");
        }
        if (yamlOptions.Given.Contains("pooling") && yamlOptions.Pooling != saved.Pooling)
            throw new HeadConfigurationException("options.pooling",
                $"the weights in {folder} were trained with pooling {MultipleChoiceOptions.Name(saved.Pooling)}, the configuration says {MultipleChoiceOptions.Name(yamlOptions.Pooling)}; remove options.pooling or train a new head");
        var merged = new JsonObject();
        foreach (var (k, v) in manifest.Options) merged[k] = v?.DeepClone();
        foreach (var p in context.Options.ValueKind == JsonValueKind.Object ? context.Options.EnumerateObject() : Enumerable.Empty<JsonProperty>())
            merged[p.Name] = JsonNode.Parse(p.Value.GetRawText());
        var options = MultipleChoiceOptions.Parse(JsonSerializer.SerializeToElement(merged)) with { Given = yamlOptions.Given };

        var weightsFile = Path.Combine(folder, HeadManifest.WeightsFileName);
        if (!File.Exists(weightsFile))
            throw new HeadConfigurationException("weights", $"{folder} has {HeadManifest.FileName} but no {HeadManifest.WeightsFileName}");
        IReadOnlyDictionary<string, Tensor> tensors;
        try
        {
            tensors = context.Checkpoints.Read(weightsFile, _ => true);
        }
        catch (Exception e) when (e is not HeadConfigurationException)
        {
            throw new HeadConfigurationException("weights", $"cannot read {weightsFile}: {e.Message}");
        }
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
