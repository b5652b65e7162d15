namespace BertHost.Core.Config;

/// <summary>
/// A deployment file with problems. Carries all of them (the host does not start when there is any); the message
/// lists them one per line as <c>FILE:LINE: PATH: message</c>.
/// </summary>
public sealed class ConfigException : Exception
{
    public ConfigException(string sourcePath, IReadOnlyList<ConfigProblem> problems)
        : base(string.Join(Environment.NewLine, problems.Select(p => p.Format(sourcePath))))
    {
        if (problems.Count == 0) throw new ArgumentException("a ConfigException needs at least one problem", nameof(problems));
        SourcePath = sourcePath;
        Problems = problems;
    }

    /// <summary>The file as it was named to the loader.</summary>
    public string SourcePath { get; }

    /// <summary>Every problem found, in file order.</summary>
    public IReadOnlyList<ConfigProblem> Problems { get; }

    /// <summary>Each problem formatted as <c>FILE:LINE: PATH: message</c>.</summary>
    public IEnumerable<string> Lines => Problems.Select(p => p.Format(SourcePath));
}
