namespace BertHost.Cli;

/// <summary>An option a verb accepts: <c>--name VALUE</c> (or <c>--name=VALUE</c>), or a flag without a value.</summary>
public sealed record OptionSpec(string Name, string Help, string? ValueName = null, bool Repeatable = false)
{
    public bool TakesValue => ValueName is not null;
}

/// <summary>Wrong use of the command line: reported as one line plus a pointer to --help, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>The options and positional arguments given to one verb (System.CommandLine parses them: <see cref="CliApp"/>).</summary>
public sealed class ParsedArgs
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);

    public List<string> Positionals { get; } = [];

    public bool Has(string name) => _values.ContainsKey(name);

    public string? Get(string name) => _values.TryGetValue(name, out var v) ? v[^1] : null;

    public IReadOnlyList<string> GetAll(string name) => _values.TryGetValue(name, out var v) ? v : [];

    public string Require(string name) => Get(name) ?? throw new UsageException($"missing required option --{name}");

    public int? GetInt(string name, int min = int.MinValue)
    {
        var text = Get(name);
        if (text is null) return null;
        if (!int.TryParse(text, out var value) || value < min)
            throw new UsageException($"--{name} must be an integer{(min > int.MinValue ? $" >= {min}" : "")}, got '{text}'");
        return value;
    }

    internal void Add(string name, string value)
    {
        if (!_values.TryGetValue(name, out var list)) _values[name] = list = [];
        list.Add(value);
    }
}
