using System.Text.RegularExpressions;

namespace BertHost.Core.IO;

/// <summary>
/// Keeps server paths out of what clients read. Messages of plugins, loaders and the OS often carry absolute paths;
/// before one goes into a response, known paths are replaced by what the client knows them as (a path relative to the
/// deployment's folder, a data file's own name), and any other absolute path by its last component. Logs keep the
/// full text.
/// </summary>
public static partial class ClientPaths
{
    // An absolute path: a '/' at the start or after a space, quote, bracket or '=' (not "a/b", not "http://").
    [GeneratedRegex(@"(?<=^|[\s'""(\[=])/[^\s'"",;()\[\]]+")]
    private static partial Regex AbsolutePath();

    // A .NET exception type where a message names it ("NullReferenceException: ...", "threw System.IO.IOException: ...").
    [GeneratedRegex(@"\b(?:[A-Z][A-Za-z0-9]*\.)*[A-Z][A-Za-z0-9]*Exception(?::\s*|\s+|\b)")]
    private static partial Regex ExceptionType();

    /// <summary><paramref name="path"/> as a client may see it: relative to <paramref name="baseFolder"/> when inside it, else its last component.</summary>
    public static string Show(string path, string? baseFolder)
    {
        if (baseFolder is not null && RealPath.IsWithin(path, baseFolder))
        {
            var relative = Path.GetRelativePath(baseFolder, path);
            return relative.Length == 0 ? "." : relative;
        }
        var name = Path.GetFileName(path.TrimEnd(Path.DirectorySeparatorChar));
        return name.Length == 0 ? "." : name;
    }

    /// <summary>
    /// <paramref name="text"/> with the <paramref name="known"/> paths replaced by how they are shown (longest first),
    /// every other absolute path that names this machine's file system (its first folder exists) by its last component,
    /// and .NET exception type names left out.
    /// </summary>
    public static string Redact(string text, IEnumerable<(string Path, string Shown)> known)
    {
        if (string.IsNullOrEmpty(text)) return text;
        text = ExceptionType().Replace(text, "");
        foreach (var (path, shown) in known.Where(k => k.Path.Length > 1).OrderByDescending(k => k.Path.Length))
            text = text.Replace(path, shown, StringComparison.Ordinal);
        return AbsolutePath().Replace(text, m =>
        {
            var value = m.Value.TrimEnd('.', ':');
            var first = value.Split('/', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
            if (first is null || !Directory.Exists("/" + first)) return m.Value;
            return Show(value, null) + m.Value[value.Length..];
        });
    }

    /// <summary><see cref="Redact(string, IEnumerable{ValueTuple{string, string}})"/> with paths inside <paramref name="baseFolder"/> made relative to it.</summary>
    public static string Redact(string text, string? baseFolder) =>
        Redact(text, baseFolder is null ? [] : [(baseFolder + Path.DirectorySeparatorChar, ""), (baseFolder, ".")]);
}
