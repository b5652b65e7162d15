namespace BertHost.Abstractions.Text;

/// <summary>One window of one encoded input (the equivalent of a Hugging Face <c>Encoding</c>).</summary>
public sealed class EncodedSequence
{
    public required int[] InputIds { get; init; }
    public required string[] Tokens { get; init; }
    public required int[] TokenTypeIds { get; init; }

    /// <summary>UTF-16 [Start, End) into the original text of the token's sequence (for pre-split words: into that
    /// word); (0,0) for special tokens added around the sequences.</summary>
    public required (int Start, int End)[] Offsets { get; init; }

    /// <summary>Index of the word (pre-tokenized split) a token comes from, per sequence; null for added specials.</summary>
    public required int?[] WordIds { get; init; }

    /// <summary>0 = first text, 1 = text pair, null = added special token.</summary>
    public required int?[] SequenceIds { get; init; }

    /// <summary>True for the special tokens added by post-processing ([CLS]/[SEP]). Special tokens written literally
    /// in the text are ordinary tokens here, as in Hugging Face.</summary>
    public required bool[] SpecialTokensMask { get; init; }

    /// <summary>Position of this window among the windows of its input (0 = the first, not overflowing).</summary>
    public int WindowIndex { get; init; }

    public int Length => InputIds.Length;

    /// <summary>Token index range [Start, End) of one sequence in this window, or null when it has no token here.</summary>
    public (int Start, int End)? SequenceRange(int sequenceId)
    {
        int start = -1, end = -1;
        for (var i = 0; i < SequenceIds.Length; i++)
        {
            if (SequenceIds[i] != sequenceId) continue;
            if (start < 0) start = i;
            end = i + 1;
        }
        return start < 0 ? null : (start, end);
    }

    /// <summary>Index of the token covering UTF-16 char <paramref name="charIndex"/> of a sequence, or null.</summary>
    public int? CharToToken(int charIndex, int sequenceId = 0)
    {
        for (var i = 0; i < Offsets.Length; i++)
            if (SequenceIds[i] == sequenceId && Offsets[i].Start <= charIndex && charIndex < Offsets[i].End) return i;
        return null;
    }
}
