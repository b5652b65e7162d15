using BertHost.Core.Bert;
using static TorchSharp.torch;

namespace BertHost.Core.Checkpoints;

/// <summary>What loading a <see cref="BertForMaskedLM"/> found.</summary>
public sealed record MaskedLMLoadReport(BodyLoadReport Body, bool HeadLoaded, bool StoredDecoderChecked);

/// <summary>
/// Reads and writes <see cref="BertForMaskedLM"/> models in the Hugging Face <c>BertForMaskedLM</c> /
/// <c>BertForPreTraining</c> layout: body under <c>bert.</c> (bare names accepted too), head under
/// <c>cls.predictions.</c>. Like transformers' safetensors files, saved folders omit the tied decoder weight and bias;
/// stored copies (as <c>torch.save</c> checkpoints have them) must equal what they are tied to.
/// </summary>
public static class MaskedLMCheckpoint
{
    private const string HeadPrefix = "cls.predictions.";

    /// <summary>The head tensors a checkpoint must hold (after legacy name fixes), by their parameter names under <c>cls.</c>.</summary>
    private static readonly string[] HeadKeys =
    [
        "predictions.transform.dense.weight", "predictions.transform.dense.bias",
        "predictions.transform.LayerNorm.weight", "predictions.transform.LayerNorm.bias", "predictions.bias",
    ];

    /// <summary>
    /// Loads a model folder. A folder without <c>cls.predictions.*</c> (a plain <c>BertModel</c>, e.g. from
    /// <c>init-model</c>) gives a fresh head initialised with <paramref name="headSeed"/>; a partial head is an error.
    /// </summary>
    public static (BertForMaskedLM Model, MaskedLMLoadReport Report) Load(string folder, long headSeed = 42)
    {
        if (!Directory.Exists(folder)) throw new CheckpointException($"model folder '{folder}' does not exist");
        var config = BertConfig.Load(Path.Combine(folder, "config.json"));
        using var source = CheckpointFiles.OpenFolder(folder);
        var model = new BertForMaskedLM(new BertModel(config, BertCheckpointLoader.HasPooler(source)));
        try
        {
            return (model, Load(model, source, headSeed));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public static MaskedLMLoadReport Load(BertForMaskedLM model, ITensorSource source, long headSeed = 42)
    {
        var body = BertCheckpointLoader.Load(model.bert, source);
        var stored = body.HeadKeys
            .Where(k => k.StartsWith(HeadPrefix, StringComparison.Ordinal))
            .ToDictionary(k => BertKeyMap.FixLegacyLayerNormName(k["cls.".Length..]), k => k, StringComparer.Ordinal);
        // Some checkpoints keep the vocabulary bias only under its tied name.
        if (!stored.ContainsKey("predictions.bias") && stored.TryGetValue("predictions.decoder.bias", out var decoderBias))
            stored["predictions.bias"] = decoderBias;

        var present = HeadKeys.Where(stored.ContainsKey).ToList();
        if (present.Count == 0)
        {
            BertInitializer.Initialize(model.cls.predictions, model.Config.InitializerRange, headSeed);
            return new MaskedLMLoadReport(body, HeadLoaded: false, StoredDecoderChecked: false);
        }
        if (present.Count < HeadKeys.Length)
            throw new CheckpointException($"{source.Description}: the masked-LM head is incomplete: missing {string.Join(", ", HeadKeys.Except(present).Select(k => "cls." + k))}");

        var parameters = model.cls.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using (no_grad())
        {
            foreach (var key in HeadKeys)
            {
                using var tensor = source.Read(stored[key]);
                var parameter = parameters[key];
                if (!tensor.shape.SequenceEqual(parameter.shape))
                    throw new CheckpointException($"{source.Description}: shape mismatch: {stored[key]} is [{string.Join(",", tensor.shape)}], expected [{string.Join(",", parameter.shape)}]");
                parameter.copy_(tensor);
            }
        }
        var checkedDecoder = CheckTied(source, stored, "predictions.decoder.weight", model.DecoderWeight, "the word embeddings (bert.embeddings.word_embeddings.weight)");
        checkedDecoder |= CheckTied(source, stored, "predictions.decoder.bias", model.cls.predictions.bias, "cls.predictions.bias");
        return new MaskedLMLoadReport(body, HeadLoaded: true, StoredDecoderChecked: checkedDecoder);
    }

    /// <summary>
    /// Writes a Hugging Face folder (config.json with <c>BertForMaskedLM</c>, tokenizer files, model.safetensors with
    /// <c>bert.*</c> and <c>cls.predictions.*</c>, the tied decoder left out as transformers does).
    /// </summary>
    public static void Save(BertForMaskedLM model, string tokenizerFolder, string destination, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var config = model.Config with { Architectures = ["BertForMaskedLM"] };
        ModelFolderWriter.Save(config, model.HuggingFaceTensors(), tokenizerFolder, destination, metadata);
    }

    // A stored copy of a tied tensor that differs would be silently replaced by the tie: refuse it instead.
    private static bool CheckTied(ITensorSource source, Dictionary<string, string> stored, string key, Tensor tiedTo, string tiedName)
    {
        if (!stored.TryGetValue(key, out var name)) return false;
        using var copy = source.Read(name);
        using var expected = tiedTo.detach().cpu().to(copy.dtype);
        using var same = copy.shape.SequenceEqual(expected.shape) ? copy.eq(expected).all() : null;
        if (same is null || !same.item<bool>())
            throw new CheckpointException($"{source.Description}: {name} differs from {tiedName}; untied decoders are not supported (the decoder is tied to it)");
        return true;
    }
}
