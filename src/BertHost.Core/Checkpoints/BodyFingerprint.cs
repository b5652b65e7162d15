using System.Security.Cryptography;
using System.Text;
using BertHost.Core.Bert;
using static TorchSharp.torch;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// Identifies a body by what determines its outputs: the architecture fields of its config, its vocabulary, and its
/// weights. Heads record it when they are trained and are refused on a body with another fingerprint.
/// Weights are hashed as float32 in sorted-name order, so the same weights stored as F32 or upcast from F16, or
/// loaded from safetensors or pytorch_model.bin, give the same fingerprint; any changed weight gives another.
/// </summary>
public static class BodyFingerprint
{
    public const string Prefix = "sha256:";

    public static string Compute(BertModel model, string? vocabPath)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AppendString(sha, ArchitectureKey(model.Config));
        if (vocabPath is not null) sha.AppendData(File.ReadAllBytes(vocabPath));

        foreach (var (name, parameter) in model.named_parameters().OrderBy(p => p.name, StringComparer.Ordinal))
        {
            AppendString(sha, $"{name}[{string.Join(",", parameter.shape)}]");
            using var cpu = parameter.detach().to(ScalarType.Float32, CPU).contiguous();
            sha.AppendData(cpu.bytes);
        }
        return Prefix + Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>The config fields that change what a body computes (dropout rates and label maps do not).</summary>
    private static string ArchitectureKey(BertConfig c) =>
        $"bert|vocab={c.VocabSize}|hidden={c.HiddenSize}|layers={c.NumHiddenLayers}|heads={c.NumAttentionHeads}" +
        $"|intermediate={c.IntermediateSize}|act={c.HiddenAct}|positions={c.MaxPositionEmbeddings}|types={c.TypeVocabSize}" +
        $"|eps={c.LayerNormEps:R}\n";

    private static void AppendString(IncrementalHash sha, string s) => sha.AppendData(Encoding.UTF8.GetBytes(s));
}
