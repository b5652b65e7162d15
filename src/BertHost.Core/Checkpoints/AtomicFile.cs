namespace BertHost.Core.Checkpoints;

/// <summary>Text files replaced atomically: a temporary file in the same folder, flushed, then renamed over the target.</summary>
public static class AtomicFile
{
    public static void WriteAllText(string path, string text)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(folder);
        var temp = Path.Combine(folder, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            using (var writer = new StreamWriter(fs))
            {
                writer.Write(text);
                writer.Flush();
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
