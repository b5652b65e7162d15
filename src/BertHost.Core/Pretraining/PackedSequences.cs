namespace BertHost.Core.Pretraining;

/// <summary>
/// The token stream cut into training sequences of a fixed length: <c>[CLS] + length-2 stream tokens + [SEP]</c>,
/// one after another with nothing skipped or repeated. Sequences cross document boundaries freely (the [SEP] stored
/// after each document marks them), as RoBERTa's FULL-SENTENCES packing does, so no sequence is padded except the
/// last. Sequence <c>i</c> is computed from its index alone, so any order can be drawn without materialising them.
/// </summary>
public sealed class PackedSequences
{
    private readonly TokenCache _cache;

    public PackedSequences(TokenCache cache, int sequenceLength, int clsTokenId, int sepTokenId, int padTokenId)
    {
        if (sequenceLength < 3) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "sequence length must be at least 3 ([CLS] token [SEP])");
        _cache = cache;
        SequenceLength = sequenceLength;
        ClsTokenId = clsTokenId;
        SepTokenId = sepTokenId;
        PadTokenId = padTokenId;
    }

    public int SequenceLength { get; }
    public int ClsTokenId { get; }
    public int SepTokenId { get; }
    public int PadTokenId { get; }

    /// <summary>Stream tokens per sequence.</summary>
    public int ContentLength => SequenceLength - 2;

    public long Count => (_cache.TokenCount + ContentLength - 1) / ContentLength;

    /// <summary>
    /// Writes sequence <paramref name="index"/> into <paramref name="ids"/> (length <see cref="SequenceLength"/>),
    /// padding after the final [SEP]; returns the number of real tokens.
    /// </summary>
    public int Fill(long index, Span<int> ids)
    {
        if (index < 0 || index >= Count) throw new ArgumentOutOfRangeException(nameof(index), index, $"there are {Count} sequences");
        if (ids.Length != SequenceLength) throw new ArgumentException($"buffer holds {ids.Length} ids, the sequence length is {SequenceLength}", nameof(ids));
        var start = index * ContentLength;
        var content = (int)Math.Min(ContentLength, _cache.TokenCount - start);
        ids[0] = ClsTokenId;
        _cache.Read(start, ids.Slice(1, content));
        ids[content + 1] = SepTokenId;
        ids[(content + 2)..].Fill(PadTokenId);
        return content + 2;
    }
}
