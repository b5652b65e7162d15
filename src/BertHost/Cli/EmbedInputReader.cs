using System.Text.Json;
using BertHost.Core.Bert;
using BertHost.Core.Body;

namespace BertHost.Cli;

/// <summary>Reads embed inputs from JSON Lines: each line an object with <c>text</c> (and optional <c>text_pair</c>) or a string.</summary>
public static class EmbedInputReader
{
    public static async Task<List<EmbedInput>> ReadAsync(string path, TextReader stdin, CancellationToken cancellationToken)
    {
        var name = path == "-" ? "<stdin>" : path;
        var inputs = new List<EmbedInput>();
        foreach (var (line, value) in await JsonLines.ReadNumberedAsync(path, stdin, cancellationToken))
            inputs.Add(Parse(value, $"{name}:{line}"));
        return inputs;
    }

    private static EmbedInput Parse(JsonElement root, string where)
    {
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
