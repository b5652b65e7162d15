using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;
using BertHost.Abstractions.Text;
using BertHost.Core.Text;

namespace BertHost.Core.Pretraining;

/// <summary>Progress of building a token cache: corpus file being read, documents and tokens so far.</summary>
public sealed record TokenizeProgress(string File, int FileIndex, int FileCount, long Documents, long Tokens);

/// <summary>
/// A corpus tokenized once into a binary file of token ids, read through a memory map. Documents are stored one
/// after another, each followed by the [SEP] id, so packed sequences that cross a document boundary show it to the
/// model; the document start offsets are kept too.
/// <para>File layout (little endian): magic <c>BHTOKC01</c>, int32 bytes per token (2 when the vocabulary fits in
/// 16 bits, else 4), int32 0, int64 token count, int64 document count, the tokens, zero padding to 8 bytes, then
/// document count + 1 int64 start offsets.</para>
/// The file name is a hash of the vocabulary, the tokenizer settings and every source file's size and sha256, so the
/// same corpus and tokenizer reuse it and anything else gets a new one. It is written to a temporary file and renamed.
/// </summary>
public sealed class TokenCache : IDisposable
{
    private static readonly byte[] Magic = "BHTOKC01"u8.ToArray();
    private const int HeaderBytes = 32;
    private const int LinesPerBatch = 4096;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly long[] _documentStarts;

    private TokenCache(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, int bytesPerToken, long tokenCount, long[] documentStarts)
    {
        Path = path;
        _map = map;
        _view = view;
        BytesPerToken = bytesPerToken;
        TokenCount = tokenCount;
        _documentStarts = documentStarts;
    }

    public string Path { get; }
    public int BytesPerToken { get; }

    /// <summary>Tokens in the stream, the [SEP] after each document included.</summary>
    public long TokenCount { get; }

    public long DocumentCount => _documentStarts.Length - 1;

    /// <summary>Where document <paramref name="index"/> starts in the token stream (index = count gives the end).</summary>
    public long DocumentStart(long index) => _documentStarts[index];

    /// <summary>Copies tokens [start, start + destination.Length) of the stream into <paramref name="destination"/>.</summary>
    public void Read(long start, Span<int> destination)
    {
        if (start < 0 || start + destination.Length > TokenCount)
            throw new ArgumentOutOfRangeException(nameof(start), $"tokens {start}..{start + destination.Length} are outside the cache's {TokenCount}");
        var offset = HeaderBytes + start * BytesPerToken;
        if (BytesPerToken == 2)
        {
            for (var i = 0; i < destination.Length; i++) destination[i] = _view.ReadUInt16(offset + 2L * i);
        }
        else
        {
            for (var i = 0; i < destination.Length; i++) destination[i] = _view.ReadInt32(offset + 4L * i);
        }
    }

    /// <summary>The cache file name for these sources and tokenizer (without building anything).</summary>
    public static string KeyFor(IReadOnlyList<string> corpusFiles, string vocabPath, TokenizerSettings settings)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s) => hash.AppendData(Encoding.UTF8.GetBytes(s + "\n"));
        Add("berthost-token-cache v1");
        Add(FileSha256(vocabPath));
        Add($"{settings.DoLowerCase} {settings.StripAccents} {settings.TokenizeChineseChars} {settings.MaxInputCharsPerWord} {settings.SepToken} {settings.UnkToken}");
        foreach (var file in corpusFiles) Add($"{new FileInfo(file).Length} {FileSha256(file)}");
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..24];
    }

    /// <summary>
    /// Opens the cache for <paramref name="corpusFiles"/> in <paramref name="cacheDirectory"/>, tokenizing the corpus
    /// first when there is none. Every line is tokenized without special tokens; lines of one document are joined.
    /// </summary>
    public static TokenCache OpenOrBuild(IReadOnlyList<string> corpusFiles, BertTextTokenizer tokenizer, string vocabPath,
        string cacheDirectory, IProgress<TokenizeProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (corpusFiles.Count == 0) throw new ArgumentException("no corpus files given");
        foreach (var file in corpusFiles)
            if (!File.Exists(file)) throw new FileNotFoundException($"corpus file '{file}' does not exist", file);
        Directory.CreateDirectory(cacheDirectory);
        var path = System.IO.Path.Combine(cacheDirectory, KeyFor(corpusFiles, vocabPath, tokenizer.Settings) + ".tokens");
        if (!File.Exists(path)) Build(corpusFiles, tokenizer, path, progress, cancellationToken);
        return Open(path);
    }

    /// <summary>Opens an existing cache file; a file that is not one (or is cut short) is an <see cref="InvalidDataException"/>.</summary>
    public static TokenCache Open(string path)
    {
        var length = new FileInfo(path).Length;
        if (length < HeaderBytes) throw new InvalidDataException($"{path}: not a token cache (too short)");
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        try
        {
            var header = new byte[HeaderBytes];
            view.ReadArray(0, header, 0, HeaderBytes);
            if (!header.AsSpan(0, 8).SequenceEqual(Magic)) throw new InvalidDataException($"{path}: not a token cache (bad magic)");
            var width = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8));
            var tokens = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(16));
            var documents = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(24));
            var startsAt = Align8(HeaderBytes + tokens * width);
            if (width is not (2 or 4) || tokens < 0 || documents < 0 || startsAt + (documents + 1) * 8 != length)
                throw new InvalidDataException($"{path}: token cache header does not match the file size (damaged file)");
            var starts = new long[documents + 1];
            view.ReadArray(startsAt, starts, 0, starts.Length);
            return new TokenCache(path, map, view, width, tokens, starts);
        }
        catch
        {
            view.Dispose();
            map.Dispose();
            throw;
        }
    }

    private static void Build(IReadOnlyList<string> corpusFiles, BertTextTokenizer tokenizer, string path,
        IProgress<TokenizeProgress>? progress, CancellationToken cancellationToken)
    {
        var width = tokenizer.VocabSize <= ushort.MaxValue + 1 ? 2 : 4;
        var temp = $"{path}.{Guid.NewGuid():N}.tmp";
        var options = new EncodeOptions { AddSpecialTokens = false, Truncation = TruncationStrategy.DoNotTruncate };
        var starts = new List<long> { 0 };
        long tokens = 0;
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20))
            {
                stream.Write(new byte[HeaderBytes]);
                var buffer = new byte[4];
                void WriteToken(int id)
                {
                    if (width == 2) BinaryPrimitives.WriteUInt16LittleEndian(buffer, (ushort)id);
                    else BinaryPrimitives.WriteInt32LittleEndian(buffer, id);
                    stream.Write(buffer, 0, width);
                    tokens++;
                }

                for (var f = 0; f < corpusFiles.Count; f++)
                {
                    var batch = new List<string?>(LinesPerBatch);
                    void Flush()
                    {
                        // Lines are tokenized in parallel and written in order.
                        var ids = new int[batch.Count][];
                        Parallel.For(0, batch.Count, new ParallelOptions { CancellationToken = cancellationToken }, i =>
                            ids[i] = batch[i] is { } text ? tokenizer.Encode(text, null, options)[0].InputIds.ToArray() : []);
                        for (var i = 0; i < batch.Count; i++)
                        {
                            if (batch[i] is null)
                            {
                                if (tokens > starts[^1])
                                {
                                    WriteToken(tokenizer.SepTokenId);
                                    starts.Add(tokens);
                                }
                                continue;
                            }
                            foreach (var id in ids[i]) WriteToken(id);
                        }
                        batch.Clear();
                        progress?.Report(new TokenizeProgress(corpusFiles[f], f, corpusFiles.Count, starts.Count - 1, tokens));
                    }
                    foreach (var line in CorpusReader.Lines(corpusFiles[f], cancellationToken))
                    {
                        batch.Add(line);
                        if (batch.Count >= LinesPerBatch) Flush();
                    }
                    Flush();
                }

                var pad = Align8(stream.Position) - stream.Position;
                stream.Write(new byte[pad]);
                var tail = new byte[8];
                foreach (var s in starts)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(tail, s);
                    stream.Write(tail);
                }
                var header = new byte[HeaderBytes];
                Magic.CopyTo(header, 0);
                BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), width);
                BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(16), tokens);
                BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(24), starts.Count - 1);
                stream.Position = 0;
                stream.Write(header);
                stream.Flush(flushToDisk: true);
            }
            if (tokens == 0) throw new InvalidDataException($"the corpus ({string.Join(", ", corpusFiles)}) holds no text");
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static long Align8(long n) => (n + 7) / 8 * 8;

    private static string FileSha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    public void Dispose()
    {
        _view.Dispose();
        _map.Dispose();
    }
}
