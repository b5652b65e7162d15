namespace BertHost.Cli;

/// <summary>A <c>berthost</c> verb.</summary>
public interface ICommand
{
    string Name { get; }

    /// <summary>One line for the verb list.</summary>
    string Summary { get; }

    /// <summary>The usage line(s) after <c>berthost NAME</c>, e.g. <c>--model DIR [TEXT ...]</c>.</summary>
    string Usage { get; }

    /// <summary>Extra help text printed after the options (examples, output format).</summary>
    string Details { get; }

    IReadOnlyList<OptionSpec> Options { get; }

    /// <returns>The process exit code.</returns>
    Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken);
}

/// <summary>Where a verb reads and writes; tests substitute their own writers.</summary>
public sealed record CommandContext(TextReader In, TextWriter Out, TextWriter Error);

/// <summary>A failure the user can act on (bad input file, model folder that does not load): one line, exit code 1.</summary>
public sealed class CommandException(string message) : Exception(message);
