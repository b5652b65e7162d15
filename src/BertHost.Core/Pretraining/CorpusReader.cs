using System.IO.Compression;
using System.Text;
using SharpCompress.Compressors.Xz;

namespace BertHost.Core.Pretraining;

/// <summary>
/// Streams plain-text corpus files (<c>.txt</c>, <c>.gz</c>, <c>.xz</c>): one paragraph or sentence group per line,
/// documents separated by blank lines. Nothing is held beyond the current line, so corpora larger than memory work.
/// </summary>
public static class CorpusReader
{
    /// <summary>Opens the file, decompressing by extension (<c>.gz</c>: gzip, <c>.xz</c>: xz/LZMA2, else as is).</summary>
    public static Stream Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"corpus file '{path}' does not exist", path);
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try
        {
            return Path.GetExtension(path).ToLowerInvariant() switch
            {
                ".gz" => new GZipStream(file, CompressionMode.Decompress),
                // Buffered: the managed LZMA2 decoder is slow on small reads.
                ".xz" => new BufferedStream(new XZStream(file), 1 << 20),
                _ => file,
            };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The corpus as a stream of lines: each non-blank line (without its line break), and <c>null</c> where a
    /// document ends (at a blank line after text, and at the end of the file). Blank runs give one boundary.
    /// Decoding problems (corrupt compressed data, invalid UTF-8 is replaced) surface as
    /// <see cref="InvalidDataException"/> naming the file.
    /// </summary>
    public static IEnumerable<string?> Lines(string path, CancellationToken cancellationToken = default)
    {
        using var stream = Open(path);
        using var reader = new StreamReader(stream, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        var inDocument = false;
        while (true)
        {
            string? line;
            try
            {
                line = reader.ReadLine();
            }
            catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
            {
                throw new InvalidDataException($"{path}: cannot be read as {(Path.GetExtension(path) is var x && x.Length > 0 ? x : "text")}: {e.Message}", e);
            }
            if (line is null) break;
            if (string.IsNullOrWhiteSpace(line))
            {
                if (inDocument)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    yield return null;
                }
                inDocument = false;
                continue;
            }
            inDocument = true;
            yield return line;
        }
        if (inDocument) yield return null;
    }

    /// <summary>The documents of a file, each as its lines (convenient for small files and tests).</summary>
    public static IEnumerable<IReadOnlyList<string>> Documents(string path)
    {
        var lines = new List<string>();
        foreach (var line in Lines(path))
        {
            if (line is not null)
            {
                lines.Add(line);
                continue;
            }
            yield return lines;
            lines = [];
        }
    }
}
