using BertHost.Abstractions.Text;
using System.Diagnostics;
using BertHost.Core.Text;
using BertHost.Tests.Support;
using Xunit.Abstractions;

namespace BertHost.Tests.Text;

public sealed class TokenizerUnitTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("berthost-text-").FullName;

    private int _n;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly string[] SmallVocab =
    [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Hello", "hello", "Ca", "##fé", "##fe", "!", "un", "##aff",
        "##able", "教", "world", "World", "cafe", "Café", "ca", ",",
    ];

    private string Folder(string? tokenizerConfig = null, string? specialMap = null, string[]? vocab = null)
    {
        var d = Directory.CreateDirectory(Path.Combine(_dir, $"m{_n++}")).FullName;
        File.WriteAllLines(Path.Combine(d, "vocab.txt"), vocab ?? SmallVocab);
        if (tokenizerConfig is not null) File.WriteAllText(Path.Combine(d, "tokenizer_config.json"), tokenizerConfig);
        if (specialMap is not null) File.WriteAllText(Path.Combine(d, "special_tokens_map.json"), specialMap);
        return d;
    }

    [Fact]
    public void Settings_default_to_uncased_bert_when_files_are_absent()
    {
        var s = TokenizerSettings.FromFolder(Folder());
        Assert.Equal(TokenizerSettings.Default, s);
        Assert.True(s.DoLowerCase && s.StripAccents && s.TokenizeChineseChars);
        Assert.Equal(512, s.ModelMaxLength);
    }

    [Fact]
    public void Settings_read_tokenizer_config_and_special_tokens_map()
    {
        var s = TokenizerSettings.FromFolder(Folder(
            """{ "do_lower_case": false, "tokenize_chinese_chars": false, "model_max_length": 128, "unk_token": "<unk>", "cls_token": {"content": "<s>", "lstrip": false} }""",
            """{ "cls_token": "[C]", "mask_token": {"content": "<mask>"} }"""));
        Assert.False(s.DoLowerCase);
        Assert.False(s.StripAccents);            // null -> follows do_lower_case
        Assert.False(s.TokenizeChineseChars);
        Assert.Equal(128, s.ModelMaxLength);
        Assert.Equal("<unk>", s.UnkToken);
        Assert.Equal("[C]", s.ClsToken);          // special_tokens_map.json wins
        Assert.Equal("<mask>", s.MaskToken);
        Assert.Equal("[SEP]", s.SepToken);
    }

    [Fact]
    public void Settings_strip_accents_explicit_and_huge_model_max_length()
    {
        var s = TokenizerSettings.FromFolder(Folder("""{ "do_lower_case": true, "strip_accents": false, "model_max_length": 1000000000000000019884624838656 }"""));
        Assert.True(s.DoLowerCase);
        Assert.False(s.StripAccents);
        Assert.Equal(512, s.ModelMaxLength);     // HF's "unset" sentinel -> default
        var s2 = TokenizerSettings.FromFolder(Folder("""{ "do_lower_case": false, "strip_accents": true }"""));
        Assert.True(s2.StripAccents);
    }

    [Fact]
    public void Malformed_json_names_the_file()
    {
        var d = Folder("{ \"do_lower_case\": tru ");
        var e = Assert.Throws<InvalidDataException>(() => TokenizerSettings.FromFolder(d));
        Assert.Contains("tokenizer_config.json", e.Message);
        var d2 = Folder(null, "[1,2");
        Assert.Contains("special_tokens_map.json", Assert.Throws<InvalidDataException>(() => TokenizerSettings.FromFolder(d2)).Message);
        var d3 = Folder("""{ "do_lower_case": "yes" }""");
        Assert.Contains("do_lower_case", Assert.Throws<InvalidDataException>(() => TokenizerSettings.FromFolder(d3)).Message);
    }

    [Fact]
    public void Missing_vocab_names_the_path()
    {
        var d = Folder();
        File.Delete(Path.Combine(d, "vocab.txt"));
        var e = Assert.Throws<FileNotFoundException>(() => BertTextTokenizer.FromFolder(d));
        Assert.Contains(Path.Combine(d, "vocab.txt"), e.Message);
    }

    [Fact]
    public void Cased_tokenizer_keeps_case_and_accents()
    {
        var tok = BertTextTokenizer.FromFolder(Folder("""{ "do_lower_case": false }"""));
        var e = tok.Encode("Hello Café, hello World!")[0];
        Assert.Equal(["[CLS]", "Hello", "Café", ",", "hello", "World", "!", "[SEP]"], e.Tokens);
        Assert.Equal([(0, 0), (0, 5), (6, 10), (10, 11), (12, 17), (18, 23), (23, 24), (0, 0)], e.Offsets);

        // accents kept: no NFD, so decomposed "Cafe\u0301" has no WordPiece cover ("##\u0301" is missing) -> [UNK]
        var e2 = tok.Encode("Cafe\u0301")[0];
        Assert.Equal(["[CLS]", "[UNK]", "[SEP]"], e2.Tokens);
        Assert.Equal((0, 5), e2.Offsets[1]);
    }

    [Fact]
    public void Uncased_tokenizer_on_small_vocab_lowercases_and_strips()
    {
        var tok = BertTextTokenizer.FromFolder(Folder());
        var e = tok.Encode("HELLO Café unaffable 教x")[0];
        Assert.Equal(["[CLS]", "hello", "cafe", "un", "##aff", "##able", "教", "[UNK]", "[SEP]"], e.Tokens);
        Assert.Equal([(0, 0), (0, 5), (6, 10), (11, 13), (13, 16), (16, 20), (21, 22), (22, 23), (0, 0)], e.Offsets);
        Assert.Equal([null, 0, 1, 2, 2, 2, 3, 4, null], e.WordIds);
        Assert.Equal(2, tok.ClsTokenId);
        Assert.Equal(0, tok.PadTokenId);
        Assert.Equal(21, tok.VocabSize);
        Assert.Equal("##aff", tok.IdToToken(12));
        Assert.Null(tok.TokenToId("nope"));
    }

    [Fact]
    public void Special_tokens_in_text_are_case_sensitive()
    {
        var tok = BertTextTokenizer.FromFolder(Folder());
        var e = tok.Encode("hello[MASK] [mask]")[0];
        Assert.Equal(["[CLS]", "hello", "[MASK]", "[UNK]", "[UNK]", "[UNK]", "[SEP]"], e.Tokens);
        Assert.False(e.SpecialTokensMask[2]);   // like HF: only the added [CLS]/[SEP] are flagged
        Assert.Equal((5, 11), e.Offsets[2]);
    }

    [Fact]
    public void Truncation_validation_gives_clear_errors()
    {
        var tok = BertTextTokenizer.FromFolder(Folder());
        const string text = "hello hello hello hello hello hello";
        var e1 = Assert.Throws<ArgumentException>(() => tok.Encode(text, options: new EncodeOptions { MaxLength = 2 }));
        Assert.Contains("special tokens", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => tok.Encode(text, "hello world",
            new EncodeOptions { MaxLength = 8, Truncation = TruncationStrategy.OnlySecond }));
        Assert.Contains("first sequence", e2.Message);
        var e3 = Assert.Throws<ArgumentException>(() => tok.Encode(text,
            options: new EncodeOptions { MaxLength = 5, Stride = 3, ReturnOverflowing = true }));
        Assert.Contains("Stride", e3.Message);
        var e4 = Assert.Throws<ArgumentException>(() => tok.Encode(text, options: new EncodeOptions { MaxLength = 5, Truncation = TruncationStrategy.OnlySecond }));
        Assert.Contains("pair", e4.Message);
        // no truncation needed: a large stride is fine (HF only checks when it cuts)
        Assert.Single(tok.Encode("hello", options: new EncodeOptions { MaxLength = 5, Stride = 10 }));
    }

    [Fact]
    public void Default_max_length_is_model_max_length_and_DoNotTruncate_ignores_it()
    {
        var tok = BertTextTokenizer.FromFolder(Folder("""{ "model_max_length": 6 }"""));
        const string text = "hello hello hello hello hello hello";
        Assert.Equal(6, tok.Encode(text)[0].Length);
        Assert.Equal(8, tok.Encode(text, options: new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate })[0].Length);
        var windows = tok.Encode(text, options: new EncodeOptions { ReturnOverflowing = true, Stride = 1 });
        Assert.Equal([0, 1], windows.Select(w => w.WindowIndex));
        Assert.Equal([null, 0, 1, 2, 3, null], windows[0].WordIds);
        Assert.Equal([null, 3, 4, 5, null], windows[1].WordIds);
    }

    [Fact]
    public void EncodeWords_offsets_are_per_word()
    {
        var tok = BertTextTokenizer.FromFolder(Folder());
        var e = tok.EncodeWords(["Hello", "unaffable", "", "World!"])[0];
        Assert.Equal(["[CLS]", "hello", "un", "##aff", "##able", "world", "!", "[SEP]"], e.Tokens);
        Assert.Equal([null, 0, 1, 1, 1, 3, 3, null], e.WordIds);
        Assert.Equal([(0, 0), (0, 5), (0, 2), (2, 5), (5, 9), (0, 5), (5, 6), (0, 0)], e.Offsets);
    }

    [Fact]
    public void PaddedBatch_pads_to_longest_and_to_multiple()
    {
        var tok = BertTextTokenizer.FromFolder(Folder());
        var a = tok.Encode("hello")[0];                      // 3 tokens
        var b = tok.Encode("hello world", "hello")[0];       // 6 tokens
        var batch = PaddedBatch.Create([a, b], padTokenId: 7);
        Assert.Equal(2, batch.BatchSize);
        Assert.Equal(6, batch.SequenceLength);
        Assert.Equal([2L, 6, 3, 7, 7, 7, 2, 6, 15, 3, 6, 3], batch.InputIds);
        Assert.Equal([1L, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1], batch.AttentionMask);
        Assert.Equal([0L, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1], batch.TokenTypeIds);
        Assert.Equal([3, 6], batch.Lengths);

        var m8 = PaddedBatch.Create([a, b], tok.PadTokenId, padToMultipleOf: 8);
        Assert.Equal(8, m8.SequenceLength);
        Assert.Equal(16, m8.InputIds.Length);
        Assert.Equal(0L, m8.InputIds[7]);
        Assert.Throws<ArgumentException>(() => PaddedBatch.Create([], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => PaddedBatch.Create([a], 0, 0));
    }

    [Fact]
    public void Decode_glues_pieces_and_skips_specials()
    {
        var tok = BertTextTokenizer.FromFolder(Folder());
        var ids = tok.Encode("hello unaffable world!")[0].InputIds;
        Assert.Equal("hello unaffable world!", tok.Decode(ids));
        Assert.Equal("[CLS] hello unaffable world! [SEP]", tok.Decode(ids, skipSpecialTokens: false));
    }

    [Fact]
    public void Concurrent_encoding_gives_the_same_results()
    {
        var tok = BertTextTokenizer.FromFolder(Folder());
        var texts = Enumerable.Range(0, 400).Select(i => $"Hello{i % 7} Café unaffable world{i % 3}! 教 {new string('x', i % 120)}").ToArray();
        var expected = texts.Select(t => string.Join(',', tok.Encode(t)[0].InputIds)).ToArray();
        var fresh = BertTextTokenizer.FromFolder(Folder());
        var actual = new string[texts.Length];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 },
            i => actual[i] = string.Join(',', fresh.Encode(texts[i])[0].InputIds));
        Assert.Equal(expected, actual);
    }

    [SharedDataFact("data/sst2/train.tsv")]
    public void Throughput_on_sst2_is_reported()
    {
        var model = TestPaths.SharedPath("models", "bert-base-uncased");
        if (!Directory.Exists(model)) return;
        var tok = BertTextTokenizer.FromFolder(model);
        var lines = File.ReadLines(TestPaths.SharedPath("data", "sst2", "train.tsv")).Skip(1)
            .Select(l => l.Split('\t')[0]).Take(20_000).ToArray();
        foreach (var l in lines.Take(500)) tok.Encode(l);      // warm-up (JIT, word cache partly)
        long tokens = 0;
        var sw = Stopwatch.StartNew();
        foreach (var l in lines) tokens += tok.Encode(l)[0].Length;
        sw.Stop();
        var warmSw = Stopwatch.StartNew();
        foreach (var l in lines) tok.Encode(l);
        warmSw.Stop();
        var batchSw = Stopwatch.StartNew();
        for (var i = 0; i + 32 <= lines.Length; i += 32)
            PaddedBatch.Create(lines.Skip(i).Take(32).Select(l => tok.Encode(l)[0]).ToArray(), tok.PadTokenId);
        batchSw.Stop();
        output.WriteLine($"SST-2 encode: {lines.Length} texts in {sw.ElapsedMilliseconds} ms = {lines.Length / sw.Elapsed.TotalSeconds:F0} texts/s, " +
                         $"{tokens / sw.Elapsed.TotalSeconds / 1e6:F2} M tokens/s (1 thread, first pass: word cache filling); " +
                         $"second pass {lines.Length / warmSw.Elapsed.TotalSeconds:F0} texts/s; " +
                         $"encode+pad batches of 32: {lines.Length / batchSw.Elapsed.TotalSeconds:F0} texts/s");
        Assert.True(tokens > lines.Length * 2);
    }
}
