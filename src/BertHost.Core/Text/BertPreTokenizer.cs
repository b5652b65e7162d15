using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace BertHost.Core.Text;

/// <summary>A pre-tokenized word: normalized text plus, per UTF-16 char of it, the original UTF-16 span it came
/// from (stored in the shared alignment arrays of <see cref="PreTokenized"/> at <see cref="AlignAt"/>).</summary>
internal readonly record struct Word(string Text, int AlignAt, int SpecialId);

internal sealed class PreTokenized
{
    public readonly List<Word> Words = new();
    public readonly List<int> AlignStart = new();
    public readonly List<int> AlignEnd = new();
}

/// <summary>
/// Hugging Face's BertNormalizer + BertPreTokenizer (and the added-token split before them), done in one pass that
/// remembers where every normalized char came from in the original string:
/// special tokens matched literally (case-sensitive, leftmost-longest) -> clean text (drop \0, U+FFFD, Cc/Cf/Co/Cn/Cs
/// except \t\n\r; whitespace -> boundary) -> CJK ideographs as separate words -> strip accents (NFD, drop Mn) ->
/// lower case (full mapping, so U+0130 -> "i\u0307") -> split on whitespace, isolate punctuation.
/// </summary>
internal sealed class BertPreTokenizer
{
    private readonly TokenizerSettings _settings;
    private readonly bool _clean;
    private readonly (string Text, int Id)[] _specials;   // longest first
    private readonly ConcurrentDictionary<int, string> _runeCache = new();

    public BertPreTokenizer(TokenizerSettings settings, IEnumerable<(string Text, int Id)> specials, bool cleanText = true)
    {
        _settings = settings;
        _clean = cleanText;
        _specials = specials.Where(s => s.Text.Length > 0).DistinctBy(s => s.Text)
            .OrderByDescending(s => s.Text.Length).ToArray();
    }

    public PreTokenized Run(string text)
    {
        var result = new PreTokenized();
        Run(text, result);
        return result;
    }

    public void Run(string text, PreTokenized result)
    {
        var sb = new StringBuilder(32);
        var wordAlign = result.AlignStart.Count;
        var lower = _settings.DoLowerCase;

        void Flush()
        {
            if (sb.Length == 0) return;
            result.Words.Add(new Word(sb.ToString(), wordAlign, -1));
            sb.Clear();
            wordAlign = result.AlignStart.Count;
        }

        void Append(char c, int s, int e)
        {
            if (sb.Length == 0) wordAlign = result.AlignStart.Count;
            sb.Append(c);
            result.AlignStart.Add(s);
            result.AlignEnd.Add(e);
        }

        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];

            if (c == '[' && _specials.Length > 0 && MatchSpecial(text, i) is { } sp)
            {
                Flush();
                result.Words.Add(new Word(sp.Text, result.AlignStart.Count, sp.Id));
                for (var k = 0; k < sp.Text.Length; k++) { result.AlignStart.Add(i); result.AlignEnd.Add(i + sp.Text.Length); }
                wordAlign = result.AlignStart.Count;
                i += sp.Text.Length;
                continue;
            }

            if (c < 0x80)   // ASCII fast path
            {
                if (c is ' ' or '\t' or '\n' or '\r') { Flush(); i++; continue; }
                if (c < 0x20 || c == 0x7F)   // Cc: dropped by clean_text, else \v \f split as whitespace
                {
                    if (_clean) { i++; continue; }
                    if (c is '\v' or '\f') { Flush(); i++; continue; }
                }
                else if (IsAsciiPunct(c))
                {
                    Flush(); Append(c, i, i + 1); Flush(); i++; continue;
                }
                Append(lower && c is >= 'A' and <= 'Z' ? (char)(c + 32) : c, i, i + 1);
                i++;
                continue;
            }

            // general path, one code point at a time (lone surrogates behave as category Cs)
            int len;
            Rune r;
            UnicodeCategory cat;
            if (Rune.TryGetRuneAt(text, i, out r)) { len = r.Utf16SequenceLength; cat = Rune.GetUnicodeCategory(r); }
            else { len = 1; r = Rune.ReplacementChar; cat = UnicodeCategory.Surrogate; }
            var start = i;
            var end = i + len;
            i = end;

            if (_clean)
            {
                if (cat == UnicodeCategory.Surrogate || r.Value == 0xFFFD
                    || (IsOther(cat) && !UnicodeCompat.Contains(UnicodeCompat.NotOther, r.Value))) continue;
                if (Rune.IsWhiteSpace(r)) { Flush(); continue; }
            }

            var norm = Normalize(r);
            if (_settings.TokenizeChineseChars && IsChinese(r.Value))
            {
                Flush();
                foreach (var ch in norm) Append(ch, start, end);
                Flush();
                continue;
            }

            if (norm.Length == 1 && !char.IsSurrogate(norm[0]))
            {
                Emit(norm[0], start, end);
                continue;
            }
            for (var k = 0; k < norm.Length;)
            {
                if (Rune.TryGetRuneAt(norm, k, out var nr) && nr.Utf16SequenceLength == 2)
                {
                    if (Rune.IsWhiteSpace(nr)) Flush();
                    else if (IsPunct(nr)) { Flush(); Append(norm[k], start, end); Append(norm[k + 1], start, end); Flush(); }
                    else { Append(norm[k], start, end); Append(norm[k + 1], start, end); }
                    k += 2;
                }
                else { Emit(norm[k], start, end); k++; }
            }
        }
        Flush();

        void Emit(char ch, int s, int e)
        {
            if (char.IsWhiteSpace(ch)) { Flush(); return; }
            if (ch < 0x80 ? IsAsciiPunct(ch) : IsPunct(new Rune(char.IsSurrogate(ch) ? '\uFFFD' : ch)))
            {
                Flush(); Append(ch, s, e); Flush(); return;
            }
            Append(ch, s, e);
        }
    }

    private (string Text, int Id)? MatchSpecial(string text, int i)
    {
        foreach (var sp in _specials)
            if (text.AsSpan(i).StartsWith(sp.Text, StringComparison.Ordinal)) return sp;
        return null;
    }

    /// <summary>Strip accents (NFD, drop Mn) then lower-case one code point, as HF does; cached per code point.</summary>
    private string Normalize(Rune r)
    {
        var strip = _settings.StripAccents;
        var lower = _settings.DoLowerCase;
        if (!strip && !lower) return r.ToString();
        if (_runeCache.TryGetValue(r.Value, out var cached)) return cached;

        var s = r.ToString();
        if (strip)
        {
            string d;
            if (UnicodeCompat.Contains(UnicodeCompat.NoDecomposition, r.Value)) d = s;
            else try { d = s.Normalize(NormalizationForm.FormD); }
            catch (ArgumentException) { d = s; }   // ICU rejects unassigned code points / noncharacters: nothing to decompose
            var sb = new StringBuilder(d.Length);
            foreach (var dr in d.EnumerateRunes())
                if (!IsNonSpacingMark(dr)) sb.Append(dr.ToString());
            s = sb.ToString();
        }
        if (lower)
        {
            var sb = new StringBuilder(s.Length + 1);
            foreach (var lr in s.EnumerateRunes())
            {
                if (lr.Value == 0x130) sb.Append("i\u0307");   // Rust char::to_lowercase uses the full mapping
                else if (UnicodeCompat.Lower(lr.Value) is var l and >= 0) sb.Append(char.ConvertFromUtf32(l));
                else sb.Append(Rune.ToLowerInvariant(lr).ToString());
            }
            s = sb.ToString();
        }
        if (_runeCache.Count < 100_000) _runeCache.TryAdd(r.Value, s);
        return s;
    }

    internal static bool IsAsciiPunct(char c) =>
        c is >= '!' and <= '/' or >= ':' and <= '@' or >= '[' and <= '`' or >= '{' and <= '~';

    internal static bool IsPunct(Rune r)
    {
        if (r.IsAscii) return IsAsciiPunct((char)r.Value);
        if (UnicodeCompat.Contains(UnicodeCompat.ExtraPunctuation, r.Value)) return true;
        if (UnicodeCompat.Contains(UnicodeCompat.NotPunctuation, r.Value)) return false;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
            or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;
    }

    private static bool IsNonSpacingMark(Rune r) =>
        Rune.GetUnicodeCategory(r) == UnicodeCategory.NonSpacingMark
            ? !UnicodeCompat.Contains(UnicodeCompat.NotNonSpacingMark, r.Value)
            : UnicodeCompat.Contains(UnicodeCompat.ExtraNonSpacingMark, r.Value);

    private static bool IsOther(UnicodeCategory c) => c is UnicodeCategory.Control or UnicodeCategory.Format
        or UnicodeCategory.PrivateUse or UnicodeCategory.Surrogate;

    /// <summary>The CJK ranges of HF's BertNormalizer (tokenizers/src/normalizers/bert.rs).</summary>
    internal static bool IsChinese(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF
            or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F or >= 0x2B920 and <= 0x2CEAF
            or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}
