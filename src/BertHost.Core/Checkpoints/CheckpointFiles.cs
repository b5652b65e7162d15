namespace BertHost.Core.Checkpoints;

/// <summary>Finds and opens checkpoint files.</summary>
public static class CheckpointFiles
{
    /// <summary>The files <see cref="OpenFolder"/> looks for, in order of preference.</summary>
    public static IReadOnlyList<string> FolderFileNames { get; } =
    [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ];

    /// <summary>
    /// Opens the weights of a Hugging Face model folder: the first of model.safetensors, model.safetensors.index.json
    /// (sharded), pytorch_model.bin, pytorch_model.bin.index.json that exists.
    /// </summary>
    /// <exception cref="CheckpointException">The folder is absent or holds none of those files (the message lists them).</exception>
    public static ITensorSource OpenFolder(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        folder = Path.GetFullPath(folder);
        if (!Directory.Exists(folder)) throw new CheckpointException(folder, null, "folder not found");
        var found = FindInFolder(folder)
                    ?? throw new CheckpointException(folder, null,
                        $"no weights found; looked for {string.Join(", ", FolderFileNames)} (in that order)");
        return Open(found);
    }

    /// <summary>The checkpoint file <see cref="OpenFolder"/> would open, or null when there is none.</summary>
    public static string? FindInFolder(string folder)
    {
        foreach (var name in FolderFileNames)
        {
            var path = Path.Combine(folder, name);
            if (File.Exists(path)) return Path.GetFullPath(path);
        }
        return null;
    }

    /// <summary>
    /// Opens one checkpoint file by its name: <c>*.index.json</c> → <see cref="ShardedCheckpoint"/>,
    /// <c>*.safetensors</c> → <see cref="SafetensorsFile"/>, <c>*.bin</c>/<c>*.pt</c>/<c>*.pth</c>/<c>*.ckpt</c> →
    /// <see cref="PyTorchCheckpointFile"/>. Other names are recognised by content (a zip archive or a pickle, the legacy
    /// torch.save format, open as <see cref="PyTorchCheckpointFile"/>; anything else as safetensors).
    /// </summary>
    public static ITensorSource Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = Path.GetFullPath(path);
        if (Directory.Exists(path)) return OpenFolder(path);
        if (!File.Exists(path)) throw new CheckpointException(path, null, "file not found");

        var name = Path.GetFileName(path);
        if (name.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)) return ShardedCheckpoint.Open(path);
        if (name.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) return SafetensorsFile.Open(path);
        if (name.EndsWith(".bin", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".pt", StringComparison.OrdinalIgnoreCase) ||
            name.EndsWith(".pth", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".ckpt", StringComparison.OrdinalIgnoreCase))
            return PyTorchCheckpointFile.Open(path);

        // Unknown extension: zip archives start with "PK", the legacy torch.save format with its pickled magic number
        // (80 02 8a 0a: PROTO 2, LONG1 of 10 bytes); anything else is tried as safetensors.
        Span<byte> head = stackalloc byte[4];
        using (var fs = File.OpenRead(path))
        {
            var got = fs.ReadAtLeast(head, 4, throwOnEndOfStream: false);
            if ((got >= 2 && head[0] == (byte)'P' && head[1] == (byte)'K') ||
                (got == 4 && head[0] == 0x80 && head[1] == 0x02 && head[2] == 0x8a && head[3] == 0x0a))
                return PyTorchCheckpointFile.Open(path);
        }
        return SafetensorsFile.Open(path);
    }
}
