using System.Security.Cryptography;

namespace BertHost.Core.Plugins;

/// <summary>
/// Turns a YAML <c>plugin:</c> value into the plugin's main assembly. A .dll is used as is. A folder is either a
/// published plugin (<c>Name.dll</c> inside, Name = the folder's name) or a plugin project folder, whose newest
/// <c>bin/{Release,Debug}/net*/Name.dll</c> build is used.
/// </summary>
public static class PluginPaths
{
    /// <summary>The main assembly of a plugin, or null when none is found (the message says where it looked).</summary>
    public static string? ResolveAssembly(string pluginPath, out string lookedFor)
    {
        if (pluginPath.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
        {
            lookedFor = pluginPath;
            return File.Exists(pluginPath) ? Path.GetFullPath(pluginPath) : null;
        }
        var folder = Path.GetFullPath(pluginPath);
        var name = Path.GetFileName(folder.TrimEnd(Path.DirectorySeparatorChar));
        var published = Path.Combine(folder, name + ".dll");
        lookedFor = $"{published} or {Path.Combine(folder, "bin", "<Release|Debug>", "net*", name + ".dll")}";
        if (File.Exists(published)) return published;
        if (!Directory.Exists(Path.Combine(folder, "bin"))) return null;
        return new[] { "Release", "Debug" }
            .Select(c => Path.Combine(folder, "bin", c))
            .Where(Directory.Exists)
            .SelectMany(c => Directory.GetDirectories(c, "net*"))
            .Select(d => Path.Combine(d, name + ".dll"))
            .Where(File.Exists)
            .OrderByDescending(File.GetLastWriteTimeUtc)
            .FirstOrDefault();
    }

    /// <summary>Lower-case hex SHA-256 of a file (what <c>sha256:</c> pins).</summary>
    public static string Sha256Of(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
