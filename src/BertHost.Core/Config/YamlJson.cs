using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace BertHost.Core.Config;

/// <summary>
/// A head's free-form <c>options:</c> mapping as JSON. Unquoted scalars that read plainly as a number
/// (<c>3</c>, <c>-0.5</c>, <c>1e-3</c>), a boolean (<c>true</c>/<c>false</c>, any of YAML 1.2's three casings) or null
/// (empty, <c>~</c>, <c>null</c>) become JSON numbers, booleans and null; everything else, and every quoted or
/// <c>!!str</c>-tagged scalar, is a string. Lists become arrays and mappings objects. <c>${ENV}</c> is substituted
/// in values first.
/// </summary>
internal static partial class YamlJson
{
    private const int MaxDepth = 64;

    [GeneratedRegex("^[-+]?[0-9]+$")]
    private static partial Regex IntegerPattern();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
    private static partial Regex FloatPattern();

    /// <summary>The options object, or null after reporting problems (including a value that is not a mapping).</summary>
    public static JsonElement? ToOptions(YamlNode node, string path, Func<string, string?> environment, Action<YamlNode, string, string> report)
    {
        if (node is YamlScalarNode { Style: ScalarStyle.Plain or ScalarStyle.Any, Value: null or "" or "~" or "null" or "Null" or "NULL" } s && s.Tag.IsEmpty)
            return null;
        if (node is not YamlMappingNode)
        {
            report(node, path, $"must be a mapping (free-form head options), got {(node is YamlSequenceNode ? "a list" : $"'{(node as YamlScalarNode)?.Value}'")}");
            return null;
        }
        var failed = false;
        var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
            Write(writer, node, path, 0, environment, (n, p, m) => { failed = true; report(n, p, m); });
        if (failed) return null;
        using var doc = JsonDocument.Parse(buffer.ToArray());
        return doc.RootElement.Clone();
    }

    private static void Write(Utf8JsonWriter writer, YamlNode node, string path, int depth, Func<string, string?> environment, Action<YamlNode, string, string> report)
    {
        if (depth > MaxDepth)
        {
            report(node, path, $"nested more than {MaxDepth} levels deep");
            writer.WriteNullValue();
            return;
        }
        switch (node)
        {
            case YamlMappingNode mapping:
                writer.WriteStartObject();
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var (keyNode, value) in mapping.Children)
                {
                    if (keyNode is not YamlScalarNode { Value: { } key })
                    {
                        report(keyNode, path, "option keys must be scalars");
                        continue;
                    }
                    if (!seen.Add(key))
                    {
                        report(keyNode, $"{path}.{key}", $"duplicate key '{key}'");
                        continue;
                    }
                    writer.WritePropertyName(key);
                    Write(writer, value, $"{path}.{key}", depth + 1, environment, report);
                }
                writer.WriteEndObject();
                break;
            case YamlSequenceNode sequence:
                writer.WriteStartArray();
                for (var i = 0; i < sequence.Children.Count; i++)
                    Write(writer, sequence.Children[i], $"{path}[{i}]", depth + 1, environment, report);
                writer.WriteEndArray();
                break;
            case YamlScalarNode scalar:
                WriteScalar(writer, scalar, path, environment, report);
                break;
            default:
                report(node, path, "unsupported YAML node");
                writer.WriteNullValue();
                break;
        }
    }

    private static void WriteScalar(Utf8JsonWriter writer, YamlScalarNode scalar, string path, Func<string, string?> environment, Action<YamlNode, string, string> report)
    {
        var errors = new List<string>();
        var text = EnvSubstitution.Expand(scalar.Value ?? "", environment, errors);
        if (text is null)
        {
            foreach (var e in errors) report(scalar, path, e);
            writer.WriteNullValue();
            return;
        }
        var plain = scalar.Style is ScalarStyle.Plain or ScalarStyle.Any;
        if (!scalar.Tag.IsEmpty)
        {
            // !!str (and any other explicit tag) keeps the text as written.
            writer.WriteStringValue(text);
            return;
        }
        if (!plain)
        {
            writer.WriteStringValue(text);
            return;
        }
        switch (text)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                writer.WriteNullValue();
                return;
            case "true" or "True" or "TRUE":
                writer.WriteBooleanValue(true);
                return;
            case "false" or "False" or "FALSE":
                writer.WriteBooleanValue(false);
                return;
        }
        if (IntegerPattern().IsMatch(text))
        {
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) writer.WriteNumberValue(l);
            else if (decimal.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var m)) writer.WriteNumberValue(m);
            else writer.WriteStringValue(text);
            return;
        }
        if (FloatPattern().IsMatch(text)
            && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d))
        {
            writer.WriteNumberValue(d);
            return;
        }
        writer.WriteStringValue(text);
    }
}
