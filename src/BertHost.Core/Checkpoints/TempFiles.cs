using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// The temporary files and folders of atomic writes (<see cref="AtomicFile"/>, <see cref="SafetensorsWriter"/>,
/// <see cref="AtomicFolder"/>, the token cache): a process killed mid-write leaves them behind, and nothing else ever
/// removes them. Previous versions a folder swap kept (<c>.old-*</c>) are left alone: they are what a crash recovers.
/// </summary>
public static partial class TempFiles
{
    [GeneratedRegex(@"\.[0-9a-f]{32}\.tmp$")]
    private static partial Regex TempFile();

    [GeneratedRegex(@"\.tmp-[0-9a-f]{32}$")]
    private static partial Regex TempFolder();

    /// <summary>Deletes every leftover under <paramref name="folder"/> (recursively); returns how many; failures are logged.</summary>
    public static int RemoveLeftovers(string folder, ILogger logger)
    {
        if (!Directory.Exists(folder)) return 0;
        var removed = 0;
        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.ReparsePoint };
        foreach (var dir in Directory.EnumerateDirectories(folder, "*", options).Where(d => TempFolder().IsMatch(d)).ToList())
            removed += Try(logger, dir, () => Directory.Delete(dir, recursive: true));
        foreach (var file in Directory.EnumerateFiles(folder, "*.tmp", options).Where(f => TempFile().IsMatch(f)).ToList())
            removed += Try(logger, file, () => File.Delete(file));
        return removed;
    }

    private static int Try(ILogger logger, string path, Action delete)
    {
        try
        {
            delete();
            logger.LogInformation("removed {Path}, left by an interrupted write", path);
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("cannot remove {Path}, left by an interrupted write: {Reason}", path, e.Message);
            return 0;
        }
    }
}
