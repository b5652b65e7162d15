using System.Text;
using System.Text.Json;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// The skeleton of a head's training-data readers: checking the file, opening it, walking its lines with their numbers,
/// parsing a JSON line and skipping malformed records when <see cref="TrainingDataOptions.SkipMalformed"/> asks for it.
/// Every problem with a record is a <see cref="TrainingDataException"/> (file, line, reason).
/// </summary>
public static class TrainingRecords
{
    /// <summary>The checks <see cref="IHeadTraining.ReadExamples"/> makes before reading: a path, options and an existing file.</summary>
    public static void Check(string path, TrainingDataOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(options);
        if (!File.Exists(path)) throw new FileNotFoundException($"training data {path} does not exist", path);
    }

    /// <summary>The error for a format outside <paramref name="formats"/>.</summary>
    public static ArgumentException UnknownFormat(string format, IReadOnlyList<string> formats) =>
        new($"data format '{format}' is not one of {string.Join(", ", formats)}");

    /// <summary>Opens a training file as UTF-8 (a byte-order mark is skipped).</summary>
    public static StreamReader Open(string path) => new(path, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: true);

    /// <summary>The JSON Lines format name every head uses.</summary>
    public const string Jsonl = "jsonl";

    /// <summary>
    /// A file's format when none is given: JSON Lines by extension (.jsonl, .json, .ndjson), the head's own table format
    /// by <paramref name="tableExtension"/>, else JSON Lines when the first non-blank character is '{'.
    /// </summary>
    public static string DetectJsonlOr(string path, string tableFormat, string? tableExtension = null)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        if (tableExtension is not null && ext == tableExtension) return tableFormat;
        if (ext is ".jsonl" or ".json" or ".ndjson") return Jsonl;
        return StartsWithObject(path) ? Jsonl : tableFormat;
    }

    /// <summary>Whether the first non-blank character of the file is <c>{</c> (a JSON-lines file).</summary>
    public static bool StartsWithObject(string path)
    {
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        int c;
        while ((c = reader.Read()) >= 0 && char.IsWhiteSpace((char)c)) { }
        return c == '{';
    }

    /// <summary>The lines of the file that are not blank, with their 1-based line numbers; the file is read lazily.</summary>
    public static IEnumerable<(int Line, string Text)> NonBlankLines(string path)
    {
        using var reader = Open(path);
        var lineNo = 0;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            yield return (lineNo, line);
        }
    }

    /// <summary>Parses one JSON line; invalid JSON is a <see cref="TrainingDataException"/> "not valid JSON: ...".</summary>
    public static JsonDocument ParseLine(string path, int lineNo, string line)
    {
        try
        {
            return JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new TrainingDataException(path, lineNo, $"not valid JSON: {e.Message}");
        }
    }

    /// <summary>
    /// Reads one JSON line that must hold an object: invalid JSON is "not valid JSON: ...", another value is
    /// "each line must be a JSON object {<paramref name="shape"/>}" (both <see cref="TrainingDataException"/>s on the line).
    /// The document lives only while <paramref name="read"/> runs: keep strings and numbers, not the element.
    /// </summary>
    /// <param name="shape">The fields a line holds, for the message, e.g. <c>{"text", "label"}</c>.</param>
    public static T ReadObjectLine<T>(string path, int lineNo, string line, string shape, Func<JsonElement, T> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        using var doc = ParseLine(path, lineNo, line);
        var o = doc.RootElement;
        if (o.ValueKind != JsonValueKind.Object) throw new TrainingDataException(path, lineNo, $"each line must be a JSON object {shape}");
        return read(o);
    }

    /// <summary>
    /// A JSON Lines training file: each non-blank line an object read by <paramref name="read"/> (element, line number),
    /// lazily; malformed records are skipped when <see cref="TrainingDataOptions.SkipMalformed"/> asks for it.
    /// </summary>
    public static IEnumerable<T> JsonlObjects<T>(string path, TrainingDataOptions options, string shape, Func<JsonElement, int, T> read) =>
        Each(NonBlankLines(path), l => ReadObjectLine(path, l.Line, l.Text, shape, o => read(o, l.Line)), options);

    /// <summary>
    /// <paramref name="read"/> applied to each record, lazily; a <see cref="TrainingDataException"/> it throws is reported to
    /// <see cref="TrainingDataOptions.SkippedRecords"/> and the record skipped when <see cref="TrainingDataOptions.SkipMalformed"/>,
    /// else it propagates.
    /// </summary>
    public static IEnumerable<TOut> Each<TIn, TOut>(IEnumerable<TIn> records, Func<TIn, TOut> read, TrainingDataOptions options)
    {
        foreach (var record in records)
        {
            TOut result;
            try
            {
                result = read(record);
            }
            catch (TrainingDataException e) when (options.SkipMalformed)
            {
                Skip(options, e);
                continue;
            }
            yield return result;
        }
    }

    /// <summary>Reports a skipped malformed record to <see cref="TrainingDataOptions.SkippedRecords"/>.</summary>
    public static void Skip(TrainingDataOptions options, TrainingDataException e) => options.SkippedRecords?.Invoke(e.File, e.Line, e.Reason);
}
