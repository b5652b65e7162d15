using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using static TorchSharp.torch;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// The host's checkpoint readers and writer as heads see them (<see cref="ICheckpointStore"/>): any format
/// <see cref="CheckpointFiles"/> opens (safetensors, pytorch_model.bin, sharded folders) for reading,
/// <see cref="SafetensorsWriter"/> for writing.
/// </summary>
/// <param name="servedVocabPath">The served body's vocab.txt, used for <see cref="BodyFingerprint"/> of a folder
/// that has none of its own (a task model saved without tokenizer files).</param>
public sealed class CheckpointStore(string? servedVocabPath = null) : ICheckpointStore
{
    public IReadOnlyList<string> ListTensors(string path)
    {
        using var source = CheckpointFiles.Open(path);
        return source.Tensors.Select(t => t.Name).ToList();
    }

    public IReadOnlyDictionary<string, Tensor> Read(string path, Func<string, bool> include)
    {
        ArgumentNullException.ThrowIfNull(include);
        using var source = CheckpointFiles.Open(path);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var info in source.Tensors)
                if (include(info.Name)) result[info.Name] = source.Read(info.Name);
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    public void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        SafetensorsWriter.Save(path, tensors, metadata);

    /// <summary>
    /// Fingerprints the folder's body weights (<c>bert.*</c> or unprefixed; task keys such as <c>classifier.*</c> are
    /// ignored; the pooler when the checkpoint has it) with its config.json and its vocab.txt, or the served body's when
    /// the folder has none — read tensor by tensor, without building a model.
    /// </summary>
    /// <exception cref="BodyLoadException">The folder's config, weights or vocabulary cannot be read (the message says which and why).</exception>
    public string BodyFingerprint(string modelFolder, bool encoderOnly = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelFolder);
        var folder = Path.GetFullPath(modelFolder);
        try
        {
            var config = BertConfig.Load(Path.Combine(folder, "config.json"));
            var vocab = Path.Combine(folder, "vocab.txt");
            if (!File.Exists(vocab))
                vocab = servedVocabPath ?? throw new BodyLoadException($"{folder} has no vocab.txt and no served vocabulary was given to compare with");
            using var source = CheckpointFiles.OpenFolder(folder);
            var (body, encoder) = Checkpoints.BodyFingerprint.ComputeBoth(config, source, vocab);
            return encoderOnly ? encoder : body;
        }
        catch (Exception e) when (e is BertConfigException or CheckpointException or IOException)
        {
            throw new BodyLoadException(e.Message, e);
        }
    }
}
