namespace BertHost.Core.Config;

/// <summary>
/// One thing wrong with a deployment file: where (1-based line and column; 0 when the problem has no place in the
/// file, such as a file that does not exist), which setting (<c>heads[1].labels</c>, <c>batching.max_batch_tokens</c>;
/// empty for the file as a whole) and what.
/// </summary>
public sealed record ConfigProblem(int Line, int Column, string Path, string Message)
{
    /// <summary>
    /// A problem with one head's plugin assembly (not found; a sha256 pin mismatch is not one of these: it stops serve). <c>validate</c> reports it like any
    /// other; <c>serve</c> can start without that head, which the plugin loader then reports as failed.
    /// </summary>
    public bool HeadPluginOnly { get; init; }

    /// <summary><c>FILE:LINE: PATH: message</c> (the line part is left out when 0, the path part when empty).</summary>
    public string Format(string file)
    {
        var where = Line > 0 ? $"{file}:{Line}:" : $"{file}:";
        return Path.Length > 0 ? $"{where} {Path}: {Message}" : $"{where} {Message}";
    }
}
