namespace BertHost.Core.Checkpoints;

/// <summary>
/// Folders replaced as a whole: written under a temporary name beside the target, then swapped in. The previous folder
/// is first renamed to <c>TARGET.old-*</c> and deleted only after the swap, so a crash at any point leaves either the
/// old or the new folder complete (<see cref="Recoverable"/> finds an old one left by a crash between the renames).
/// </summary>
public static class AtomicFolder
{
    /// <param name="write">Writes the new content into the folder it is given (which does not exist yet).</param>
    public static void Replace(string destination, Action<string> write)
    {
        destination = Path.GetFullPath(destination);
        var temp = $"{destination}.tmp-{Guid.NewGuid():N}";
        var old = $"{destination}.old-{Guid.NewGuid():N}";
        try
        {
            write(temp);
            if (Directory.Exists(destination)) Directory.Move(destination, old);
            Directory.Move(temp, destination);
            foreach (var stale in Directory.GetDirectories(Path.GetDirectoryName(destination)!, Path.GetFileName(destination) + ".old-*"))
                Directory.Delete(stale, recursive: true);
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>The previous versions of <paramref name="destination"/> a crash may have left behind, newest first.</summary>
    public static IEnumerable<string> Recoverable(string destination)
    {
        destination = Path.GetFullPath(destination);
        var parent = Path.GetDirectoryName(destination)!;
        return Directory.Exists(parent)
            ? Directory.GetDirectories(parent, Path.GetFileName(destination) + ".old-*").OrderByDescending(Directory.GetLastWriteTimeUtc)
            : [];
    }
}
