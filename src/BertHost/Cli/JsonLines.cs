using System.Text.Json;

namespace BertHost.Cli;

/// <summary>Reads a JSON Lines file (or stdin for '-'): one JSON value per non-blank line.</summary>
internal static class JsonLines
{
    public static async Task<List<JsonElement>> ReadAsync(string path, TextReader stdin, CancellationToken cancellationToken) =>
        (await ReadNumberedAsync(path, stdin, cancellationToken)).Select(v => v.Value).ToList();

    /// <summary>The values with their line numbers, for messages that point at a line.</summary>
    public static async Task<List<(int Line, JsonElement Value)>> ReadNumberedAsync(string path, TextReader stdin, CancellationToken cancellationToken)
    {
        var name = path == "-" ? "<stdin>" : path;
        if (path != "-" && !File.Exists(path)) throw new CommandException($"--input: file '{path}' not found");
        using var owned = path == "-" ? null : new StreamReader(path);
        var reader = owned ?? stdin;
        var values = new List<(int, JsonElement)>();
        var lineNumber = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                values.Add((lineNumber, doc.RootElement.Clone()));
            }
            catch (JsonException e)
            {
                throw new CommandException($"{name}:{lineNumber}: not valid JSON ({e.Message})");
            }
        }
        return values;
    }
}
