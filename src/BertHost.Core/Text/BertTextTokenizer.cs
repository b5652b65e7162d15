using BertHost.Abstractions.Text;
using System.Text;

namespace BertHost.Core.Text;

/// <summary>
/// BERT tokenizer with Hugging Face fast-tokenizer parity (ids, tokens, offsets into the original text, word ids,
/// pairs, truncation strategies, overflowing windows with stride). Thread-safe.
/// </summary>
public sealed class BertTextTokenizer : ITextTokenizer
{
    private readonly WordPieceModel _model;
    private readonly BertPreTokenizer _pre;
    private readonly HashSet<int> _specialIds;

    private BertTextTokenizer(TokenizerSettings settings, WordPieceModel model)
    {
        Settings = settings;
        _model = model;
        UnkTokenId = model.UnkId;
        PadTokenId = Require(settings.PadToken, "pad");
        ClsTokenId = Require(settings.ClsToken, "cls");
        SepTokenId = Require(settings.SepToken, "sep");
        MaskTokenId = Require(settings.MaskToken, "mask");
        var specials = new[] { settings.PadToken, settings.UnkToken, settings.ClsToken, settings.SepToken, settings.MaskToken }
            .Select(t => (t, model.TokenToId(t)!.Value)).ToArray();
        _specialIds = specials.Select(s => s.Item2).ToHashSet();
        _pre = new BertPreTokenizer(settings, specials);

        int Require(string token, string what) => model.TokenToId(token)
            ?? throw new InvalidDataException($"The {what} token '{token}' is not in the vocabulary.");
    }

    /// <summary>Loads vocab.txt (required) and the settings of <see cref="TokenizerSettings.FromFolder"/>.</summary>
    public static BertTextTokenizer FromFolder(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        var vocab = Path.Combine(folder, "vocab.txt");
        if (!File.Exists(vocab))
            throw new FileNotFoundException($"BERT tokenizer needs '{Path.GetFullPath(vocab)}', which does not exist.", vocab);
        return Create(vocab, TokenizerSettings.FromFolder(folder));
    }

    /// <summary>A tokenizer from an explicit vocab file and settings.</summary>
    public static BertTextTokenizer Create(string vocabPath, TokenizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.MaxInputCharsPerWord < 1)
            throw new ArgumentException("MaxInputCharsPerWord must be at least 1.", nameof(settings));
        if (settings.ModelMaxLength < 1)
            throw new ArgumentException("ModelMaxLength must be at least 1.", nameof(settings));
        return new BertTextTokenizer(settings, new WordPieceModel(vocabPath, settings.UnkToken, settings.MaxInputCharsPerWord));
    }

    public TokenizerSettings Settings { get; }
    public int VocabSize => _model.VocabSize;
    public int PadTokenId { get; }
    public int ClsTokenId { get; }
    public int SepTokenId { get; }
    public int MaskTokenId { get; }
    public int UnkTokenId { get; }
    public int ModelMaxLength => Settings.ModelMaxLength;

    public int? TokenToId(string token) => _model.TokenToId(token);
    public string IdToToken(int id) => _model.IdToToken(id);

    /// <summary>Normalized words with their UTF-16 spans in <paramref name="text"/> (HF pre_tokenize_str, after normalization).</summary>
    public IReadOnlyList<(string Word, int Start, int End)> PreTokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var p = _pre.Run(text);
        return p.Words.Select(w => (w.Text, p.AlignStart[w.AlignAt], p.AlignEnd[w.AlignAt + w.Text.Length - 1])).ToList();
    }

    /// <summary>
    /// Encodes a text or a (text, textPair) pair. Returns one window, or all windows when
    /// <see cref="EncodeOptions.ReturnOverflowing"/> is set (same order as HF's [encoding, *encoding.overflowing]).
    /// Unless <see cref="TruncationStrategy.DoNotTruncate"/>, inputs are cut to MaxLength (default: model_max_length).
    /// </summary>
    public IReadOnlyList<EncodedSequence> Encode(string text, string? textPair = null, EncodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        options ??= EncodeOptions.Default;
        var a = EncodeSequence(text);
        var b = textPair is null ? null : EncodeSequence(textPair);
        return Assemble(a, b, options);
    }

    /// <summary>
    /// Encodes pre-split words (HF is_split_into_words): every word is normalized and tokenized on its own,
    /// WordIds are indices into <paramref name="words"/>, offsets are relative to each word.
    /// </summary>
    public IReadOnlyList<EncodedSequence> EncodeWords(IReadOnlyList<string> words, EncodeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(words);
        options ??= EncodeOptions.Default;
        var seq = new Seq();
        for (var w = 0; w < words.Count; w++)
        {
            var word = words[w] ?? throw new ArgumentException($"words[{w}] is null.", nameof(words));
            var one = EncodeSequence(word);
            for (var i = 0; i < one.Count; i++) seq.Add(one.Ids[i], one.Offsets[i], w);
        }
        return Assemble(seq, null, options);
    }

    /// <summary>HF WordPiece decoding: pieces joined, "##" glued, then HF's per-token cleanup (" ." -> "." etc.).</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var sb = new StringBuilder();
        var first = true;
        foreach (var id in ids)
        {
            if (skipSpecialTokens && _specialIds.Contains(id)) continue;
            var tok = IdToToken(id);
            string piece;
            if (first) piece = tok;
            else if (tok.StartsWith("##", StringComparison.Ordinal)) piece = tok[2..];
            else piece = " " + tok;
            first = false;
            sb.Append(Cleanup(piece));
        }
        return sb.ToString();
    }

    private static string Cleanup(string s) => s
        .Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",").Replace(" ' ", "'")
        .Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" do not", " don't").Replace(" 's", "'s")
        .Replace(" 've", "'ve").Replace(" 're", "'re");

    // ---- internals -------------------------------------------------------------------------------------------

    /// <summary>Content tokens of one sequence (no specials).</summary>
    internal sealed class Seq
    {
        public readonly List<int> Ids = new();
        public readonly List<(int, int)> Offsets = new();
        public readonly List<int> WordIds = new();
        public int Count => Ids.Count;
        public void Add(int id, (int, int) off, int word) { Ids.Add(id); Offsets.Add(off); WordIds.Add(word); }
    }

    private Seq EncodeSequence(string text)
    {
        var seq = new Seq();
        if (text.Length == 0) return seq;
        var p = _pre.Run(text);
        for (var w = 0; w < p.Words.Count; w++)
        {
            var word = p.Words[w];
            if (word.SpecialId >= 0)
            {
                seq.Add(word.SpecialId, (p.AlignStart[word.AlignAt], p.AlignEnd[word.AlignAt]), w);
                continue;
            }
            var pieces = _model.Tokenize(word.Text);
            for (var k = 0; k < pieces.Ids.Length; k++)
            {
                var (s, e) = pieces.Spans[k];
                seq.Add(pieces.Ids[k], (p.AlignStart[word.AlignAt + s], p.AlignEnd[word.AlignAt + e - 1]), w);
            }
        }
        return seq;
    }

    private IReadOnlyList<EncodedSequence> Assemble(Seq a, Seq? b, EncodeOptions o)
    {
        if (o.Stride < 0) throw new ArgumentOutOfRangeException(nameof(o), o.Stride, "Stride must be >= 0.");
        var added = o.AddSpecialTokens ? (b is null ? 2 : 3) : 0;
        List<(int, int)> wa = [(0, a.Count)];
        List<(int, int)>? wb = b is null ? null : [(0, b.Count)];

        if (o.Truncation != TruncationStrategy.DoNotTruncate)
        {
            var maxLength = o.MaxLength ?? Settings.ModelMaxLength;
            var budget = maxLength - added;
            if (budget < 1 || (o.Truncation == TruncationStrategy.OnlySecond && b is not null && budget - a.Count < 1 && a.Count + b.Count > budget))
                throw new ArgumentException(
                    $"max_length {maxLength} is too small: it must hold the {added} special tokens" +
                    (o.Truncation == TruncationStrategy.OnlySecond && b is not null
                        ? $" and the whole first sequence ({a.Count} tokens) plus at least one token of the second"
                        : " plus at least one token") + ".", nameof(o));
            (wa, wb) = Truncation.Windows(a.Count, b?.Count, budget, o.Truncation, o.Stride);
        }

        var result = new List<EncodedSequence>();
        void Emit(int ia, int ib) => result.Add(Build(a, wa[ia], b, wb?[ib], o.AddSpecialTokens, result.Count));
        // HF EncodedSequence::merge_with order: main, then (A_i, B_0), (A_i, B_j>0) for i>0, then (A_0, B_j>0)
        Emit(0, 0);
        if (o.ReturnOverflowing)
        {
            var nb = wb?.Count ?? 1;
            for (var i = 1; i < wa.Count; i++)
                for (var j = 0; j < nb; j++) Emit(i, j);
            for (var j = 1; j < nb; j++) Emit(0, j);
        }
        return result;
    }

    private EncodedSequence Build(Seq a, (int Start, int End) ra, Seq? b, (int Start, int End)? rb, bool special, int window)
    {
        var n = (ra.End - ra.Start) + (rb is { } x ? x.End - x.Start : 0) + (special ? (b is null ? 2 : 3) : 0);
        var ids = new int[n];
        var types = new int[n];
        var offs = new (int, int)[n];
        var words = new int?[n];
        var seqs = new int?[n];
        var mask = new bool[n];
        var p = 0;

        void Special(int id, int type) { ids[p] = id; types[p] = type; mask[p] = true; p++; }
        void Content(Seq s, (int Start, int End) r, int seqId)
        {
            for (var i = r.Start; i < r.End; i++, p++)
            {
                ids[p] = s.Ids[i]; types[p] = seqId; offs[p] = s.Offsets[i]; words[p] = s.WordIds[i]; seqs[p] = seqId;
            }
        }

        if (special) Special(ClsTokenId, 0);
        Content(a, ra, 0);
        if (special) Special(SepTokenId, 0);
        if (b is not null)
        {
            Content(b, rb!.Value, 1);
            if (special) Special(SepTokenId, 1);
        }
        var tokens = new string[n];
        for (var i = 0; i < n; i++) tokens[i] = _model.IdToToken(ids[i]);
        return new EncodedSequence
        {
            InputIds = ids, Tokens = tokens, TokenTypeIds = types, Offsets = offs, WordIds = words,
            SequenceIds = seqs, SpecialTokensMask = mask, WindowIndex = window,
        };
    }
}
