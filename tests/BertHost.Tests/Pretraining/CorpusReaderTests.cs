using System.IO.Compression;
using BertHost.Core.Pretraining;
using BertHost.Tests.Support;

namespace BertHost.Tests.Pretraining;

public sealed class CorpusReaderTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-corpus-");
    private static readonly string Plain = TestPaths.Fixture("corpus", "small.txt");
    private static readonly string Xz = TestPaths.Fixture("corpus", "small.txt.xz");

    public void Dispose() => _dir.Delete(recursive: true);

    private static readonly string[][] ExpectedDocuments =
    [
        ["the old man went to the city with his dog", "she said no"],
        ["the dog is very happy today", "we will see what happens in the city next week"],
        ["the quick brown fox jumped over the lazy dog"],
    ];

    [Fact]
    public void Blank_lines_separate_documents_and_runs_of_them_give_one_boundary()
    {
        var docs = CorpusReader.Documents(Plain).ToList();
        Assert.Equal(ExpectedDocuments.Length, docs.Count);
        for (var i = 0; i < docs.Count; i++) Assert.Equal(ExpectedDocuments[i], docs[i]);
        // The stream form: null after each document, also at the end of a file without a trailing blank line.
        var lines = CorpusReader.Lines(Plain).ToList();
        Assert.Equal(8, lines.Count);
        Assert.Null(lines[^1]);
        Assert.Equal(3, lines.Count(l => l is null));
    }

    [Fact]
    public void Xz_and_gzip_files_stream_the_same_text_as_the_plain_file()
    {
        var gz = Path.Combine(_dir.FullName, "small.txt.gz");
        using (var output = new GZipStream(File.Create(gz), CompressionLevel.Optimal))
        using (var input = File.OpenRead(Plain))
            input.CopyTo(output);

        var plain = CorpusReader.Lines(Plain).ToList();
        Assert.Equal(plain, CorpusReader.Lines(Xz).ToList());
        Assert.Equal(plain, CorpusReader.Lines(gz).ToList());
    }

    [Fact]
    public void A_large_xz_corpus_is_read_without_loading_it_whole()
    {
        // The shared corpus is ~90 MB of text per file: the first document arrives long before the file is read.
        var path = TestPaths.SharedPath("data", "corpus", "technical.txt.xz");
        if (!File.Exists(path)) return;
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var first = CorpusReader.Lines(path).TakeWhile(l => l is not null).Count();
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(first > 0);
        Assert.True(allocated < 64L << 20, $"reading the first document allocated {allocated:N0} bytes");
    }

    [Fact]
    public void A_damaged_xz_file_is_an_error_naming_the_file()
    {
        var bad = Path.Combine(_dir.FullName, "bad.txt.xz");
        var bytes = File.ReadAllBytes(Xz);
        for (var i = 40; i < 80; i++) bytes[i] ^= 0x5A;
        File.WriteAllBytes(bad, bytes);
        var e = Assert.ThrowsAny<Exception>(() => CorpusReader.Lines(bad).ToList());
        Assert.True(e is InvalidDataException, $"{e.GetType().Name}: {e.Message}");
        Assert.Contains("bad.txt.xz", e.Message);
    }

    [Fact]
    public void A_missing_file_names_it()
    {
        var e = Assert.Throws<FileNotFoundException>(() => CorpusReader.Lines(Path.Combine(_dir.FullName, "nope.txt")).ToList());
        Assert.Contains("nope.txt", e.Message);
    }
}
