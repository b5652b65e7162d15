namespace BertHost.Cli;

/// <summary>An option a verb accepts: <c>--name VALUE</c> (or <c>--name=VALUE</c>), or a flag without a value.</summary>
public sealed record OptionSpec(string Name, string Help, string? ValueName = null, bool Repeatable = false)
{
    public bool TakesValue => ValueName is not null;
}

/// <summary>Wrong use of the command line: reported as one line plus a pointer to --help, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>The options and positional arguments given to one verb.</summary>
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

    /// <summary>Parses <paramref name="args"/> against a verb's options; unknown options and missing values are usage errors.</summary>
    public static ParsedArgs Parse(IReadOnlyList<string> args, IReadOnlyList<OptionSpec> options, string verb)
    {
        var parsed = new ParsedArgs();
        var byName = options.ToDictionary(o => o.Name, StringComparer.Ordinal);
        var onlyPositionals = false;
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (onlyPositionals || !arg.StartsWith("--", StringComparison.Ordinal) || arg == "-")
            {
                if (!onlyPositionals && arg.Length > 1 && arg[0] == '-' && arg != "-")
                    throw new UsageException($"unknown option '{arg}' for '{verb}'");
                parsed.Positionals.Add(arg);
                continue;
            }
            if (arg == "--")
            {
                onlyPositionals = true;
                continue;
            }
            var eq = arg.IndexOf('=');
            var name = eq > 0 ? arg[2..eq] : arg[2..];
            if (!byName.TryGetValue(name, out var spec))
                throw new UsageException($"unknown option '--{name}' for '{verb}'");
            if (!spec.TakesValue)
            {
                if (eq > 0) throw new UsageException($"option --{name} takes no value");
                parsed.Add(name, "true");
                continue;
            }
            string value;
            if (eq > 0) value = arg[(eq + 1)..];
            else if (i + 1 < args.Count) value = args[++i];
            else throw new UsageException($"option --{name} needs a value ({spec.ValueName})");
            if (!spec.Repeatable && parsed.Has(name)) throw new UsageException($"option --{name} given more than once");
            parsed.Add(name, value);
        }
        return parsed;
    }
}
