using System.Collections.Concurrent;
using Microsoft.ML.Tokenizers;

namespace BertHost.Core.Text;

/// <summary>WordPiece result of one normalized word: ids and UTF-16 [start,end) inside the word.</summary>
internal sealed record WordPieces(int[] Ids, (int Start, int End)[] Spans);

/// <summary>
/// vocab.txt plus WordPiece (greedy longest-match-first, "##" continuation, whole word -> [UNK] when a piece is
/// missing or the word has more than MaxInputCharsPerWord code points). The matching itself is Microsoft.ML.Tokenizers'
/// <see cref="WordPieceTokenizer"/> run on one already-normalized word (no pre-tokenizer, no normalizer); results are
/// cached per word (bounded).
/// </summary>
internal sealed class WordPieceModel
{
    private const int CacheLimit = 200_000;
    private readonly WordPieceTokenizer _wp;
    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _reverse;
    private readonly int _maxChars;
    private readonly int _unkId;
    private readonly ConcurrentDictionary<string, WordPieces> _cache = new(StringComparer.Ordinal);

    public WordPieceModel(string vocabPath, string unkToken, int maxInputCharsPerWord)
    {
        if (!File.Exists(vocabPath))
            throw new FileNotFoundException($"WordPiece vocabulary '{Path.GetFullPath(vocabPath)}' was not found.", vocabPath);
        // like HF/transformers: token = line without its line break, id = line number (a later duplicate wins)
        var lines = File.ReadAllLines(vocabPath);
        _reverse = lines;
        _vocab = new Dictionary<string, int>(lines.Length, StringComparer.Ordinal);
        for (var i = 0; i < lines.Length; i++) _vocab[lines[i]] = i;
        if (!_vocab.TryGetValue(unkToken, out _unkId))
            throw new InvalidDataException($"The unknown token '{unkToken}' is not in '{vocabPath}'.");
        _maxChars = maxInputCharsPerWord;
        try
        {
            // Our own code-point check runs first; ML's (UTF-16 based) limit is set so that it never triggers.
            _wp = WordPieceTokenizer.Create(vocabPath, new WordPieceOptions
            {
                UnknownToken = unkToken,
                ContinuingSubwordPrefix = "##",
                MaxInputCharsPerWord = Math.Max(1, 2 * maxInputCharsPerWord + 2),
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            throw new InvalidDataException($"'{vocabPath}' could not be loaded as a WordPiece vocabulary: {e.Message}", e);
        }
    }

    public int VocabSize => _reverse.Length;
    public int UnkId => _unkId;

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;

    public string IdToToken(int id) =>
        (uint)id < (uint)_reverse.Length ? _reverse[id] : throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id must be in [0, {_reverse.Length}).");

    public WordPieces Tokenize(string word)
    {
        if (_cache.TryGetValue(word, out var hit)) return hit;
        var r = Compute(word);
        if (_cache.Count >= CacheLimit) _cache.Clear();
        _cache.TryAdd(word, r);
        return r;
    }

    private WordPieces Compute(string word)
    {
        var codePoints = 0;
        foreach (var _ in word.EnumerateRunes()) codePoints++;
        if (codePoints > _maxChars) return new WordPieces([_unkId], [(0, word.Length)]);
        if (_vocab.TryGetValue(word, out var whole)) return new WordPieces([whole], [(0, word.Length)]);

        var tokens = _wp.EncodeToTokens(word, out _, considerPreTokenization: false, considerNormalization: false);
        var ids = new int[tokens.Count];
        var spans = new (int, int)[tokens.Count];
        for (var i = 0; i < tokens.Count; i++)
        {
            ids[i] = tokens[i].Id;
            var (off, len) = tokens[i].Offset.GetOffsetAndLength(word.Length);
            spans[i] = (off, off + len);
        }
        return new WordPieces(ids, spans);
    }
}
