namespace BertHost.Core.Checkpoints;

/// <summary>
/// Maps the names stored in a Hugging Face checkpoint onto <see cref="Bert.BertModel"/> parameter names. Published
/// BERT checkpoints come as a bare <c>BertModel</c> (no prefix) or as a task model whose body sits under <c>bert.</c>
/// next to task keys (<c>classifier.*</c>, <c>qa_outputs.*</c>, <c>cls.*</c>); TF-era conversions name LayerNorm
/// parameters <c>gamma</c>/<c>beta</c>.
/// </summary>
public static class BertKeyMap
{
    public const string BodyPrefix = "bert.";

    private static readonly string[] BodyRoots = ["embeddings.", "encoder.", "pooler."];

    /// <summary>Buffers some checkpoints store that are not parameters (recomputed by the encoder).</summary>
    private static readonly HashSet<string> IgnoredBodyKeys = ["embeddings.position_ids"];

    /// <summary>What a stored name is, from the body's point of view.</summary>
    public enum KeyKind
    {
        /// <summary>Looks like a body parameter (under <c>bert.</c> or a body root); <c>BodyName</c> says which.</summary>
        Body,
        /// <summary>A known buffer of the body that is not loaded (e.g. <c>embeddings.position_ids</c>).</summary>
        IgnoredBuffer,
        /// <summary>Anything else: task heads and pre-training heads, kept for the heads to read.</summary>
        Head,
    }

    /// <summary>Classifies a stored name and returns the body parameter name it maps to (for <see cref="KeyKind.Body"/>).</summary>
    public static (KeyKind Kind, string BodyName) Classify(string storedName)
    {
        var name = storedName.StartsWith(BodyPrefix, StringComparison.Ordinal) ? storedName[BodyPrefix.Length..] : storedName;
        if (!BodyRoots.Any(root => name.StartsWith(root, StringComparison.Ordinal)))
            return (KeyKind.Head, storedName);
        name = FixLegacyLayerNormName(name);
        return IgnoredBodyKeys.Contains(name) ? (KeyKind.IgnoredBuffer, name) : (KeyKind.Body, name);
    }

    internal static string FixLegacyLayerNormName(string name)
    {
        if (name.EndsWith(".gamma", StringComparison.Ordinal)) return name[..^".gamma".Length] + ".weight";
        if (name.EndsWith(".beta", StringComparison.Ordinal)) return name[..^".beta".Length] + ".bias";
        return name;
    }
}
