using System.Text.Json;

namespace BertHost.Core.Serving;

/// <summary>
/// Finds strings a parsed JSON document holds but .NET cannot turn into text: bytes that are not UTF-8, and escapes
/// that leave a lone surrogate (<c>"\ud800"</c>). System.Text.Json parses such documents and fails only when the string
/// is read, deep inside whoever reads it; checking once up front lets the request be refused as the client's error,
/// naming where.
/// </summary>
public static class JsonStrings
{
    /// <summary>Where the first undecodable string is, or null when every string and property name decodes.</summary>
    /// <returns>The JSON path of the value (<c>inputs[2].text</c>), or of the object whose property name it is (<c>IsName</c>); "" is the document itself.</returns>
    public static (string Path, bool IsName)? FindInvalid(JsonElement element, string path = "")
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                return Decodes(() => element.GetString()) ? null : (path, false);
            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in element.EnumerateArray())
                {
                    if (FindInvalid(item, $"{path}[{i}]") is { } found) return found;
                    i++;
                }
                return null;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name = "";
                    if (!Decodes(() => name = property.Name)) return (path, true);
                    if (FindInvalid(property.Value, path.Length == 0 ? name : $"{path}.{name}") is { } found) return found;
                }
                return null;
            default:
                return null;
        }
    }

    /// <summary>The client's error for what <see cref="FindInvalid"/> found: a 400 naming the field.</summary>
    public static ServingException Error((string Path, bool IsName) found, string what = "the request") => found.IsName
        ? new ServingException(ServingError.BadRequest,
            $"a property name in {(found.Path.Length == 0 ? what : found.Path)} is not valid UTF-8 text (invalid bytes or a lone surrogate)", found.Path.Length == 0 ? null : found.Path)
        : new ServingException(ServingError.BadRequest,
            $"{(found.Path.Length == 0 ? what : found.Path)} is not valid UTF-8 text (invalid bytes or a lone surrogate)", found.Path.Length == 0 ? null : found.Path);

    /// <summary>Throws <see cref="Error"/> when <paramref name="element"/> holds an undecodable string.</summary>
    public static void Check(JsonElement element, string path = "", string what = "the request")
    {
        if (FindInvalid(element, path) is { } found) throw Error(found, what);
    }

    private static bool Decodes(Action read)
    {
        try
        {
            read();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
