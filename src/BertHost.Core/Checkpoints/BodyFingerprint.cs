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

    /// <summary>The fingerprint of the whole body, pooler included.</summary>
    public static string Compute(BertModel model, string? vocabPath) => ComputeBoth(model, vocabPath).Body;

    /// <summary>
    /// The whole body's fingerprint and the encoder's (everything but the pooler), in one pass over the weights.
    /// Task models without a pooler (token classification, question answering) are matched by the encoder's.
    /// </summary>
    public static (string Body, string Encoder) ComputeBoth(BertModel model, string? vocabPath) =>
        Hash(model.Config, model.named_parameters().Select(p => (p.name, p.parameter.shape, (Func<Tensor>)(() => p.parameter.detach()))), vocabPath);

    /// <summary>
    /// The same fingerprints for a checkpoint not loaded into a model (its config and its tensors, read one at a time):
    /// equal to <see cref="ComputeBoth(BertModel, string?)"/> of a model loaded from it.
    /// </summary>
    /// <exception cref="CheckpointException">A body weight is missing or has the wrong shape.</exception>
    public static (string Body, string Encoder) ComputeBoth(BertConfig config, ITensorSource source, string? vocabPath)
    {
        var plan = BertCheckpointLoader.Plan(source, BertParameters.Of(config, BertCheckpointLoader.HasPooler(source)));
        return Hash(config, plan.Stored.Select(p => (p.Key, p.Value.Shape, (Func<Tensor>)(() => source.Read(p.Value.Name)))), vocabPath);
    }

    /// <remarks>
    /// One SHA-256 pass: in name order the pooler's parameters come after every other one ("pooler." sorts after
    /// "embeddings." and "encoder."), so the encoder's fingerprint is the running hash just before the first of them,
    /// and the body's goes on through them. (Two hashes over the same bytes took ~0.1 s of a MiniLM load.)
    /// </remarks>
    private static (string Body, string Encoder) Hash(BertConfig config, IEnumerable<(string Name, long[] Shape, Func<Tensor> Read)> parameters, string? vocabPath)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(Encoding.UTF8.GetBytes(ArchitectureKey(config)));
        if (vocabPath is not null) sha.AppendData(File.ReadAllBytes(vocabPath));

        byte[]? encoder = null;
        foreach (var (name, shape, read) in parameters.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            var isPooler = name.StartsWith(PoolerPrefix, StringComparison.Ordinal);
            if (isPooler) encoder ??= sha.GetCurrentHash();
            else if (encoder is not null) throw new InvalidOperationException($"parameter {name} sorts after the pooler's: the encoder's fingerprint would include it");
            using var tensor = read();
            using var cpu = tensor.to(ScalarType.Float32, CPU).contiguous();
            sha.AppendData(Encoding.UTF8.GetBytes($"{name}[{string.Join(",", shape)}]"));
            AppendData(sha, cpu);
        }
        encoder ??= sha.GetCurrentHash();
        return (Prefix + Convert.ToHexStringLower(sha.GetHashAndReset()), Prefix + Convert.ToHexStringLower(encoder));
    }

    /// <summary>
    /// Hashes the tensor's memory where it lies, in spans an int can count (<c>Tensor.bytes</c> is one span, which a
    /// weight above 2 GiB would overflow).
    /// </summary>
    private static unsafe void AppendData(IncrementalHash sha, Tensor contiguous)
    {
        var data = Backends.TensorMemory.Bytes(contiguous);
        var length = contiguous.NumberOfElements * contiguous.ElementSize;
        for (long offset = 0; offset < length; offset += MaxSpan)
            sha.AppendData(new ReadOnlySpan<byte>(data + offset, (int)Math.Min(MaxSpan, length - offset)));
    }

    private const long MaxSpan = 1L << 30;

    private const string PoolerPrefix = "pooler.";

    /// <summary>The config fields that change what a body computes (dropout rates and label maps do not).</summary>
    private static string ArchitectureKey(BertConfig c) =>
        $"bert|vocab={c.VocabSize}|hidden={c.HiddenSize}|layers={c.NumHiddenLayers}|heads={c.NumAttentionHeads}" +
        $"|intermediate={c.IntermediateSize}|act={c.HiddenAct}|positions={c.MaxPositionEmbeddings}|types={c.TypeVocabSize}" +
        $"|eps={c.LayerNormEps:R}\n";
}
