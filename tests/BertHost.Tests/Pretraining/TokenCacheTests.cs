using BertHost.Abstractions.Text;
using BertHost.Core.Pretraining;
using BertHost.Core.Text;
using BertHost.Tests.Support;

namespace BertHost.Tests.Pretraining;

public sealed class TokenCacheTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-tokens-");
    internal static readonly string ModelFolder = ReferenceOutputs.ModelFolder("tiny-bert");
    private static readonly string Vocab = Path.Combine(ModelFolder, "vocab.txt");
    private static readonly BertTextTokenizer Tokenizer = BertTextTokenizer.FromFolder(ModelFolder);

    public void Dispose() => _dir.Delete(recursive: true);

    /// <summary>What the cache must hold: each document's line tokens, then [SEP].</summary>
    private static List<int> ExpectedStream(string corpus, List<long> starts)
    {
        var options = new EncodeOptions { AddSpecialTokens = false, Truncation = TruncationStrategy.DoNotTruncate };
        var stream = new List<int>();
        starts.Add(0);
        foreach (var doc in CorpusReader.Documents(corpus))
        {
            foreach (var line in doc) stream.AddRange(Tokenizer.Encode(line, null, options)[0].InputIds);
            stream.Add(Tokenizer.SepTokenId);
            starts.Add(stream.Count);
        }
        return stream;
    }

    [Fact]
    public void Holds_the_tokenized_documents_each_followed_by_sep_and_is_memory_mapped_back()
    {
        var corpus = TestPaths.Fixture("corpus", "small.txt.xz");
        var starts = new List<long>();
        var expected = ExpectedStream(corpus, starts);
        using var cache = TokenCache.OpenOrBuild([corpus], Tokenizer, Vocab, _dir.FullName);
        Assert.Equal(expected.Count, cache.TokenCount);
        Assert.Equal(3, cache.DocumentCount);
        Assert.Equal(2, cache.BytesPerToken);
        var read = new int[cache.TokenCount];
        cache.Read(0, read);
        Assert.Equal(expected, read);
        for (var d = 0; d <= cache.DocumentCount; d++) Assert.Equal(starts[d], cache.DocumentStart(d));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Read(cache.TokenCount - 1, new int[2]));
    }

    [Fact]
    public void Is_reused_for_the_same_corpus_and_rebuilt_for_another()
    {
        var corpus = Path.Combine(_dir.FullName, "a.txt");
        File.WriteAllText(corpus, "the dog sat\n\nthe cat sat\n");
        string first;
        using (var cache = TokenCache.OpenOrBuild([corpus], Tokenizer, Vocab, _dir.FullName))
            first = cache.Path;
        var written = File.GetLastWriteTimeUtc(first);
        Thread.Sleep(20);
        using (var again = TokenCache.OpenOrBuild([corpus], Tokenizer, Vocab, _dir.FullName))
        {
            Assert.Equal(first, again.Path);
            Assert.Equal(written, File.GetLastWriteTimeUtc(again.Path));
        }
        File.WriteAllText(corpus, "the dog sat\n\nthe cat sat on the mat\n");
        using var changed = TokenCache.OpenOrBuild([corpus], Tokenizer, Vocab, _dir.FullName);
        Assert.NotEqual(first, changed.Path);
        Assert.Empty(Directory.GetFiles(_dir.FullName, "*.tmp"));
    }

    [Fact]
    public void A_damaged_cache_file_is_refused()
    {
        var corpus = Path.Combine(_dir.FullName, "a.txt");
        File.WriteAllText(corpus, "the dog sat\n");
        string path;
        using (var cache = TokenCache.OpenOrBuild([corpus], Tokenizer, Vocab, _dir.FullName)) path = cache.Path;
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^4]);
        var e = Assert.Throws<InvalidDataException>(() => TokenCache.Open(path));
        Assert.Contains("damaged", e.Message);
    }

    [Fact]
    public void An_empty_corpus_is_an_error()
    {
        var corpus = Path.Combine(_dir.FullName, "empty.txt");
        File.WriteAllText(corpus, "\n\n");
        var e = Assert.Throws<InvalidDataException>(() => TokenCache.OpenOrBuild([corpus], Tokenizer, Vocab, _dir.FullName));
        Assert.Contains("holds no text", e.Message);
    }
}
