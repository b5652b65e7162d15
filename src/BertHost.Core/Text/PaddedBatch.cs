using BertHost.Abstractions.Text;
namespace BertHost.Core.Text;

/// <summary>
/// Encodings padded (right side) to the longest one in the batch, optionally rounded up to a multiple of N.
/// Row-major [BatchSize, SequenceLength] arrays; attention mask 1 for real tokens, 0 for padding; padding gets
/// <c>padTokenId</c> and token type 0. Free of TorchSharp on purpose.
/// </summary>
public sealed class PaddedBatch
{
    private PaddedBatch(int batch, int length, long[] ids, long[] types, long[] mask, int[] lengths)
    {
        BatchSize = batch; SequenceLength = length; InputIds = ids; TokenTypeIds = types; AttentionMask = mask; Lengths = lengths;
    }

    public int BatchSize { get; }
    public int SequenceLength { get; }
    public long[] InputIds { get; }
    public long[] TokenTypeIds { get; }
    public long[] AttentionMask { get; }

    /// <summary>Unpadded length of each row.</summary>
    public int[] Lengths { get; }

    public static PaddedBatch Create(IReadOnlyList<EncodedSequence> items, int padTokenId, int padToMultipleOf = 1)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0) throw new ArgumentException("A batch needs at least one encoding.", nameof(items));
        if (padToMultipleOf < 1)
            throw new ArgumentOutOfRangeException(nameof(padToMultipleOf), padToMultipleOf, "padToMultipleOf must be >= 1.");

        var longest = 0;
        foreach (var e in items)
        {
            ArgumentNullException.ThrowIfNull(e, nameof(items));
            longest = Math.Max(longest, e.Length);
        }
        var t = (longest + padToMultipleOf - 1) / padToMultipleOf * padToMultipleOf;
        var b = items.Count;
        var ids = new long[b * t];
        var types = new long[b * t];
        var mask = new long[b * t];
        var lengths = new int[b];
        for (var r = 0; r < b; r++)
        {
            var e = items[r];
            var row = r * t;
            lengths[r] = e.Length;
            for (var i = 0; i < e.Length; i++)
            {
                ids[row + i] = e.InputIds[i];
                types[row + i] = e.TokenTypeIds[i];
                mask[row + i] = 1;
            }
            if (padTokenId != 0) Array.Fill(ids, padTokenId, row + e.Length, t - e.Length);
        }
        return new PaddedBatch(b, t, ids, types, mask, lengths);
    }
}
