using BertHost.Abstractions.Text;
using System.Text.Json;
using BertHost.Core.Text;
using BertHost.Tests.Support;

namespace BertHost.Tests.Text;

/// <summary>
/// Parity with Hugging Face's Rust tokenizer on the committed fixtures (tests/reference/tokenizer/generate.mjs,
/// bert-base-uncased). Offsets in the fixtures are UTF-16 code units into the original text.
/// </summary>
public sealed class HfParityTests
{
    private const string Model = "models/bert-base-uncased";
    private static readonly Lazy<BertTextTokenizer> Tok = new(() => BertTextTokenizer.FromFolder(TestPaths.SharedPath(Model)));

    private static JsonElement Cases(string file) =>
        JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("tokenizer", file))).RootElement.GetProperty("cases");

    private static JsonElement Case(string file, string name) =>
        Cases(file).EnumerateArray().First(c => c.GetProperty("name").GetString() == name);

    public static TheoryData<string> Names(string file)
    {
        var d = new TheoryData<string>();
        foreach (var c in Cases(file).EnumerateArray()) d.Add(c.GetProperty("name").GetString()!);
        return d;
    }

    public static TheoryData<string> SingleNames() => Names("single.json");
    public static TheoryData<string> PairNames() => Names("pairs.json");
    public static TheoryData<string> WordNames() => Names("words.json");

    [SharedDataTheory(Model)]
    [MemberData(nameof(SingleNames))]
    public void Single_text_matches_hf(string name)
    {
        var c = Case("single.json", name);
        var text = c.GetProperty("text").GetString()!;
        var with = Tok.Value.Encode(text, options: new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate });
        Assert.Single(with);
        AssertSame(c.GetProperty("encoding"), with[0], name);
        var without = Tok.Value.Encode(text, options: new EncodeOptions { AddSpecialTokens = false });
        AssertSame(c.GetProperty("noSpecial"), without[0], name + " (no special tokens)");
    }

    [SharedDataTheory(Model)]
    [MemberData(nameof(PairNames))]
    public void Pairs_truncation_and_windows_match_hf(string name)
    {
        var c = Case("pairs.json", name);
        var text = c.GetProperty("text").GetString()!;
        var pair = c.GetProperty("pair").ValueKind == JsonValueKind.Null ? null : c.GetProperty("pair").GetString();
        var options = Options(c) with { AddSpecialTokens = c.GetProperty("addSpecialTokens").GetBoolean() };

        if (c.TryGetProperty("error", out var err))
        {
            var ex = Assert.Throws<ArgumentException>(() => Tok.Value.Encode(text, pair, options));
            Assert.False(string.IsNullOrWhiteSpace(ex.Message), $"HF: {err.GetString()}");
            return;
        }
        var windows = Tok.Value.Encode(text, pair, options);
        var expected = c.GetProperty("windows");
        Assert.Equal(expected.GetArrayLength(), windows.Count);
        for (var i = 0; i < windows.Count; i++)
        {
            Assert.Equal(i, windows[i].WindowIndex);
            AssertSame(expected[i], windows[i], $"{name} window {i}");
        }
        // without ReturnOverflowing only the first window comes back
        var first = Tok.Value.Encode(text, pair, options with { ReturnOverflowing = false });
        Assert.Single(first);
        AssertSame(expected[0], first[0], $"{name} first only");
    }

    [SharedDataTheory(Model)]
    [MemberData(nameof(WordNames))]
    public void Pre_split_words_match_hf(string name)
    {
        var c = Case("words.json", name);
        var words = c.GetProperty("words").EnumerateArray().Select(w => w.GetString()!).ToArray();
        var options = Options(c);
        var windows = Tok.Value.EncodeWords(words, options);

        var content = c.GetProperty("content");
        var all = Tok.Value.EncodeWords(words, new EncodeOptions { AddSpecialTokens = false, Truncation = TruncationStrategy.DoNotTruncate })[0];
        Assert.Equal(Ints(content.GetProperty("ids")), all.InputIds);
        Assert.Equal(Strings(content.GetProperty("tokens")), all.Tokens);
        Assert.Equal(Ints(content.GetProperty("wordIds")).Select(i => (int?)i), all.WordIds);
        Assert.Equal(Pairs(content.GetProperty("offsets")), all.Offsets);

        var expected = c.GetProperty("windows");
        Assert.Equal(expected.GetArrayLength(), windows.Count);
        for (var i = 0; i < windows.Count; i++)
        {
            var e = expected[i];
            Assert.Equal(Ints(e.GetProperty("ids")), windows[i].InputIds);
            Assert.Equal(Strings(e.GetProperty("tokens")), windows[i].Tokens);
            Assert.Equal(Ints(e.GetProperty("typeIds")), windows[i].TokenTypeIds);
            Assert.Equal(Ints(e.GetProperty("specialTokensMask")), windows[i].SpecialTokensMask.Select(b => b ? 1 : 0));
            Assert.Equal(NullableInts(e.GetProperty("sequenceIds")), windows[i].SequenceIds);
        }
    }

    [SharedDataFact(Model)]
    public void Decode_matches_hf()
    {
        foreach (var c in Cases("decode.json").EnumerateArray())
        {
            var text = c.GetProperty("text").GetString()!;
            var ids = Ints(c.GetProperty("ids"));
            Assert.Equal(ids, Tok.Value.Encode(text)[0].InputIds);
            Assert.Equal(c.GetProperty("skipSpecial").GetString(), Tok.Value.Decode(ids));
            Assert.Equal(c.GetProperty("keepSpecial").GetString(), Tok.Value.Decode(ids, skipSpecialTokens: false));
        }
    }

    private static EncodeOptions Options(JsonElement c)
    {
        var t = c.GetProperty("truncation");
        if (t.ValueKind == JsonValueKind.Null)
            return new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate, ReturnOverflowing = true };
        return new EncodeOptions
        {
            MaxLength = t.GetProperty("maxLength").GetInt32(),
            Truncation = Enum.Parse<TruncationStrategy>(t.GetProperty("strategy").GetString()!),
            Stride = t.TryGetProperty("stride", out var s) ? s.GetInt32() : 0,
            ReturnOverflowing = true,
        };
    }

    private static void AssertSame(JsonElement e, EncodedSequence actual, string what)
    {
        var expTokens = Strings(e.GetProperty("tokens"));
        var ctx = $"{what}\n  expected: {string.Join(' ', expTokens)}\n  actual:   {string.Join(' ', actual.Tokens)}";
        Assert.True(expTokens.SequenceEqual(actual.Tokens), "tokens differ: " + ctx);
        Assert.True(Ints(e.GetProperty("ids")).SequenceEqual(actual.InputIds), "ids differ: " + ctx);
        Assert.True(Ints(e.GetProperty("typeIds")).SequenceEqual(actual.TokenTypeIds), "type ids differ: " + ctx);
        var expOffsets = Pairs(e.GetProperty("offsets"));
        Assert.True(expOffsets.SequenceEqual(actual.Offsets),
            $"offsets differ: {ctx}\n  expected: {string.Join(' ', expOffsets)}\n  actual:   {string.Join(' ', actual.Offsets)}");
        Assert.True(NullableInts(e.GetProperty("wordIds")).SequenceEqual(actual.WordIds),
            $"word ids differ: {ctx}\n  expected: {string.Join(',', NullableInts(e.GetProperty("wordIds")))}\n  actual:   {string.Join(',', actual.WordIds)}");
        Assert.True(NullableInts(e.GetProperty("sequenceIds")).SequenceEqual(actual.SequenceIds), "sequence ids differ: " + ctx);
        Assert.True(Ints(e.GetProperty("specialTokensMask")).SequenceEqual(actual.SpecialTokensMask.Select(b => b ? 1 : 0)),
            "special tokens mask differs: " + ctx);
    }

    private static int[] Ints(JsonElement a) => a.EnumerateArray().Select(x => x.GetInt32()).ToArray();
    private static string[] Strings(JsonElement a) => a.EnumerateArray().Select(x => x.GetString()!).ToArray();
    private static int?[] NullableInts(JsonElement a) =>
        a.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.Null ? (int?)null : x.GetInt32()).ToArray();
    private static (int, int)[] Pairs(JsonElement a) =>
        a.EnumerateArray().Select(x => (x[0].GetInt32(), x[1].GetInt32())).ToArray();
}
