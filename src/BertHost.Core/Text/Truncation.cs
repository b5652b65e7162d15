using BertHost.Abstractions.Text;
namespace BertHost.Core.Text;

/// <summary>
/// Hugging Face truncation (tokenizers/src/utils/truncation.rs truncate_encodings + EncodedSequence::truncate, direction
/// right), expressed as token ranges: each sequence becomes a list of windows, the first being the kept part and the
/// rest HF's "overflowing" parts.
/// </summary>
internal static class Truncation
{
    public static (List<(int, int)> A, List<(int, int)>? B) Windows(int lenA, int? lenB, int maxLength, TruncationStrategy strategy, int stride)
    {
        List<(int, int)> a = [(0, lenA)];
        List<(int, int)>? b = lenB is { } lb ? [(0, lb)] : null;
        var total = lenA + (lenB ?? 0);
        if (total <= maxLength) return (a, b);
        var toRemove = total - maxLength;

        switch (strategy)
        {
            case TruncationStrategy.LongestFirst when lenB is { } n2Len:
            {
                int n1 = lenA, n2 = n2Len;
                var swap = n1 > n2;
                if (swap) (n1, n2) = (n2, n1);
                n2 = n1 > maxLength ? n1 : Math.Max(n1, maxLength - n1);
                if (n1 + n2 > maxLength)
                {
                    n1 = maxLength / 2;
                    n2 = n1 + maxLength % 2;
                }
                if (swap) (n1, n2) = (n2, n1);
                return (Split(lenA, n1, stride), Split(n2Len, n2, stride));
            }
            case TruncationStrategy.LongestFirst:
                return (Split(lenA, lenA - toRemove, stride), null);
            case TruncationStrategy.OnlyFirst:
            case TruncationStrategy.OnlySecond:
            {
                var second = strategy == TruncationStrategy.OnlySecond;
                if (second && lenB is null)
                    throw new ArgumentException("Truncation strategy OnlySecond needs a text pair, but only one text was given.");
                var targetLen = second ? lenB!.Value : lenA;
                if (targetLen <= toRemove)
                    throw new ArgumentException(
                        $"Cannot truncate the {(second ? "second" : "first")} sequence ({targetLen} tokens) by {toRemove} tokens to fit " +
                        $"max_length (content budget {maxLength}); use a larger max_length or another truncation strategy.");
                if (second) b = Split(lenB!.Value, targetLen - toRemove, stride);
                else a = Split(lenA, targetLen - toRemove, stride);
                return (a, b);
            }
            default:
                return (a, b);
        }
    }

    /// <summary>EncodedSequence::truncate(max_len, stride, Right): windows of max_len advancing by max_len - stride.</summary>
    internal static List<(int, int)> Split(int len, int maxLen, int stride)
    {
        if (maxLen >= len) return [(0, len)];
        if (maxLen == 0) return [(0, 0), (0, len)];
        if (stride >= maxLen)
            throw new ArgumentException(
                $"Stride ({stride}) must be smaller than the window it slides over ({maxLen} tokens of this sequence, " +
                "i.e. max_length minus the special tokens and the other sequence); lower the stride or raise max_length.");
        var step = maxLen - stride;
        var windows = new List<(int, int)>();
        for (var start = 0; start < len; start += step)
        {
            var stop = Math.Min(start + maxLen, len);
            windows.Add((start, stop));
            if (stop == len) break;
        }
        return windows;
    }
}
