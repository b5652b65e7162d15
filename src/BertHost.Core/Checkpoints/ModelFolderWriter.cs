using BertHost.Core.Bert;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// Saves a body as a Hugging Face model folder (config.json, tokenizer files, model.safetensors with plain
/// <c>BertModel</c> keys), so transformers and this host load it alike.
/// </summary>
public static class ModelFolderWriter
{
    private static readonly string[] TokenizerFiles = ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"];

    /// <param name="tokenizerFolder">Folder whose vocab.txt (required) and tokenizer files are copied.</param>
    public static void Save(BertModel model, string tokenizerFolder, string destination, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var config = model.Config with { Architectures = model.Config.Architectures ?? ["BertModel"] };
        Save(config, model.named_parameters().Select(p => (p.name, (TorchSharp.torch.Tensor)p.parameter)), tokenizerFolder, destination, metadata);
    }

    /// <summary>
    /// The general form: <paramref name="config"/> as config.json and <paramref name="tensors"/> under the names given
    /// (for example a <c>BertForMaskedLM</c>'s <c>bert.*</c> and <c>cls.*</c> keys).
    /// </summary>
    public static void Save(BertConfig config, IEnumerable<(string Name, TorchSharp.torch.Tensor Tensor)> tensors, string tokenizerFolder,
        string destination, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var vocab = Path.Combine(tokenizerFolder, "vocab.txt");
        if (!File.Exists(vocab)) throw new CheckpointException($"{vocab}: file not found (a model folder needs the vocabulary it was built with)");
        Directory.CreateDirectory(destination);
        foreach (var name in TokenizerFiles)
        {
            var source = Path.Combine(tokenizerFolder, name);
            var target = Path.Combine(destination, name);
            if (!File.Exists(source) || Path.GetFullPath(source) == Path.GetFullPath(target)) continue;
            File.Copy(source, target, overwrite: true);
            // Copies of read-only sources (e.g. a shared model folder) stay writable, so a later save can replace them.
            File.SetAttributes(target, FileAttributes.Normal);
        }
        AtomicFile.WriteAllText(Path.Combine(destination, "config.json"), config.ToJson());
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (metadata is not null)
            foreach (var (k, v) in metadata) meta[k] = v;
        SafetensorsWriter.Save(Path.Combine(destination, "model.safetensors"), tensors.Select(t => KeyValuePair.Create(t.Name, t.Tensor)), meta);
    }
}
