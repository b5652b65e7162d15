using System.Text.Json;
using BertHost.Core.Bert;

namespace BertHost.Cli;

/// <summary>Reads embed inputs from JSON Lines: each line an object with <c>text</c> (and optional <c>text_pair</c>) or a string.</summary>
public static class EmbedInputReader
{
    public static async Task<List<EmbedInput>> ReadAsync(string path, TextReader stdin, CancellationToken cancellationToken)
    {
        var name = path == "-" ? "<stdin>" : path;
        if (path != "-" && !File.Exists(path)) throw new CommandException($"--input: file '{path}' not found");
        using var owned = path == "-" ? null : new StreamReader(path);
        var reader = owned ?? stdin;
        var inputs = new List<EmbedInput>();
        var lineNumber = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            inputs.Add(ParseLine(line, $"{name}:{lineNumber}"));
        }
        return inputs;
    }

    public static EmbedInput ParseLine(string line, string where)
    {
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(line);
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new CommandException($"{where}: not valid JSON ({e.Message})");
        }
        switch (root.ValueKind)
        {
            case JsonValueKind.String:
                return new EmbedInput(root.GetString()!);
            case JsonValueKind.Object:
                var text = StringField(root, "text", where, required: true)!;
                return new EmbedInput(text, StringField(root, "text_pair", where, required: false));
            default:
                throw new CommandException($"{where}: expected a JSON object with \"text\" or a JSON string, got {root.ValueKind.ToString().ToLowerInvariant()}");
        }
    }

    private static string? StringField(JsonElement obj, string field, string where, bool required)
    {
        if (!obj.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
            return required ? throw new CommandException($"{where}: field \"{field}\" is missing") : null;
        if (value.ValueKind != JsonValueKind.String)
            throw new CommandException($"{where}: field \"{field}\" must be a string, got {value.ValueKind.ToString().ToLowerInvariant()}");
        return value.GetString();
    }
}
