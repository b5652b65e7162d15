namespace BertHost.Core.Checkpoints;

/// <summary>
/// A checkpoint file is missing, malformed, unsupported or unsafe. The message always names the file (or folder) and,
/// where one is involved, the tensor, so it can be shown to a user as is.
/// </summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string message) : base(message) { }

    public CheckpointException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>Builds "'<paramref name="file"/>'[, tensor '<paramref name="tensor"/>']: <paramref name="problem"/>".</summary>
    public CheckpointException(string file, string? tensor, string problem, Exception? innerException = null)
        : base(Compose(file, tensor, problem), innerException)
    {
        FilePath = file;
        TensorName = tensor;
    }

    /// <summary>The file or folder the problem is in, when known.</summary>
    public string? FilePath { get; }

    /// <summary>The tensor the problem is about, when there is one.</summary>
    public string? TensorName { get; }

    private static string Compose(string file, string? tensor, string problem) =>
        tensor is null ? $"Checkpoint '{file}': {problem}" : $"Checkpoint '{file}', tensor '{tensor}': {problem}";
}
