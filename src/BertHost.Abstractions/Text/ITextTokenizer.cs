namespace BertHost.Abstractions.Text;

/// <summary>
/// The body's tokenizer as heads see it: Hugging Face fast-tokenizer semantics (pairs, truncation strategies,
/// overflowing windows with a stride, offsets into the original text, word ids).
/// </summary>
public interface ITextTokenizer
{
    int VocabSize { get; }
    int PadTokenId { get; }
    int ClsTokenId { get; }
    int SepTokenId { get; }
    int MaskTokenId { get; }
    int UnkTokenId { get; }

    /// <summary>The longest sequence (special tokens included) the tokenizer's model accepts.</summary>
    int ModelMaxLength { get; }

    /// <summary>Encodes a text or a pair; more than one window only with <see cref="EncodeOptions.ReturnOverflowing"/>.</summary>
    IReadOnlyList<EncodedSequence> Encode(string text, string? textPair = null, EncodeOptions? options = null);

    /// <summary>Encodes pre-split words (token classification): word ids index <paramref name="words"/>, offsets are into each word.</summary>
    IReadOnlyList<EncodedSequence> EncodeWords(IReadOnlyList<string> words, EncodeOptions? options = null);

    int? TokenToId(string token);
    string IdToToken(int id);
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true);
}
