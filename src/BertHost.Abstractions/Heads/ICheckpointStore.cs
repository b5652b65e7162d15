using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads;

/// <summary>The host's checkpoint readers and writer, offered to heads (safetensors, pytorch_model.bin, sharded folders).</summary>
public interface ICheckpointStore
{
    /// <summary>Names of the tensors in a checkpoint file or Hugging Face model folder.</summary>
    IReadOnlyList<string> ListTensors(string path);

    /// <summary>Reads the tensors whose stored name passes <paramref name="include"/> as new CPU tensors (the caller disposes them).</summary>
    IReadOnlyDictionary<string, Tensor> Read(string path, Func<string, bool> include);

    /// <summary>Writes a safetensors file atomically.</summary>
    void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null);

    /// <summary>
    /// The fingerprint the body stored in a Hugging Face folder (its <c>bert.*</c> weights with that folder's config and
    /// vocabulary) would have, to check that an imported task model was fine-tuned on the body being served. With
    /// <paramref name="encoderOnly"/>, the pooler is left out (compare with <see cref="BodyInfo.EncoderFingerprint"/>).
    /// </summary>
    string BodyFingerprint(string modelFolder, bool encoderOnly = false);
}
