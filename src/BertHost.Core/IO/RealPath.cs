using System.Runtime.InteropServices;

namespace BertHost.Core.IO;

/// <summary>
/// A path with every symbolic link resolved, in every component (POSIX <c>realpath</c>): what a path really names, so
/// that a check "is it inside this folder" cannot be walked around by a link.
/// </summary>
public static partial class RealPath
{
    /// <summary>The resolved absolute path; throws <see cref="FileNotFoundException"/> when it does not exist.</summary>
    public static string Of(string path)
    {
        var full = Path.GetFullPath(path);
        if (OperatingSystem.IsWindows()) return Managed(full);
        var resolved = realpath(full, IntPtr.Zero);
        if (resolved == IntPtr.Zero) throw new FileNotFoundException($"{full} does not exist or cannot be resolved", full);
        try
        {
            return Marshal.PtrToStringUTF8(resolved)!;
        }
        finally
        {
            free(resolved);
        }
    }

    /// <summary>Whether <paramref name="path"/> (resolved) is <paramref name="folder"/> (resolved) or inside it.</summary>
    public static bool IsWithin(string path, string folder)
    {
        var prefix = folder.EndsWith(Path.DirectorySeparatorChar) ? folder : folder + Path.DirectorySeparatorChar;
        var comparison = OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        return path.Equals(folder, comparison) || path.StartsWith(prefix, comparison);
    }

    // Windows has no realpath: resolve each component's link target in turn.
    private static string Managed(string full)
    {
        var root = Path.GetPathRoot(full)!;
        var current = root;
        foreach (var part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            current = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(current) ? new DirectoryInfo(current) : new FileInfo(current);
            if (!info.Exists) throw new FileNotFoundException($"{full} does not exist", full);
            if (info.ResolveLinkTarget(returnFinalTarget: true) is { } target) current = Path.GetFullPath(target.FullName);
        }
        return current;
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr realpath(string path, IntPtr resolved);

    [LibraryImport("libc")]
    private static partial void free(IntPtr pointer);
}
