using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;

namespace BertHost.Cli;

/// <summary>
/// <c>berthost VERB ...</c> on System.CommandLine: each <see cref="ICommand"/> becomes a subcommand whose options come
/// from its <see cref="ICommand.Options"/>, so help, <c>@response-files</c>, <c>--version</c> and shell completions
/// (the <c>[suggest]</c> directive that <c>dotnet-suggest</c> calls) come from the library. Failures stay one line and an
/// exit code: 2 for wrong use of the command line, 1 for a failure the user can act on.
/// </summary>
public sealed class CliApp(IReadOnlyList<ICommand> commands)
{
    public const int ExitOk = 0;
    public const int ExitFailure = 1;
    public const int ExitUsage = 2;

    private const string Program = "berthost";

    /// <summary>The application with every verb.</summary>
    public static CliApp CreateDefault() => new(
    [
        new ServeCommand(), new ValidateCommand(), new PredictCommand(), new HeadsCommand(), new EmbedCommand(), new InitModelCommand(), new ImportOnnxCommand(), new TrainCommand(), new EvalCommand(), new PretrainCommand(), new FillMaskCommand(),
    ]);

    public async Task<int> RunAsync(string[] args, CommandContext context, CancellationToken cancellationToken = default)
    {
        // "berthost help VERB" as well as "berthost VERB --help".
        if (args is ["help", .. var topic]) args = [.. topic, "--help"];
        var (root, verbs) = Build(context);
        if (args.Length == 0)
        {
            WriteHelp(root, context.Error);
            return ExitUsage;
        }
        var parsed = root.Parse(args);
        var verb = parsed.CommandResult.Command;
        var error = parsed.Action is HelpAction ? null : FirstError(args, parsed, verbs.GetValueOrDefault(verb));
        if (error is not null)
        {
            var see = verb == root ? $"see '{Program} --help'" : $"see '{Program} {verb.Name} --help'";
            context.Error.WriteLine(verb == root ? $"{Program}: {error} ({see})" : $"{Program} {verb.Name}: {error} ({see})");
            return ExitUsage;
        }
        if (verb == root && parsed.Action is null)
        {
            WriteHelp(root, context.Error);
            return ExitUsage;
        }
        return await parsed.InvokeAsync(new InvocationConfiguration
        {
            Output = context.Out,
            Error = context.Error,
            // Program owns the signals (the daemon drains on SIGTERM); the verb gets its token.
            ProcessTerminationTimeout = null,
            EnableDefaultExceptionHandler = false,
        }, cancellationToken);
    }

    private static void WriteHelp(RootCommand root, TextWriter writer) =>
        root.Parse("--help").Invoke(new InvocationConfiguration { Output = writer });

    /// <summary>The verbs as System.CommandLine commands, with what maps a parse back to each verb's <see cref="ParsedArgs"/>.</summary>
    private (RootCommand Root, Dictionary<Command, Verb> Verbs) Build(CommandContext context)
    {
        var root = new RootCommand("BertHost: one shared BERT body serving task-head plugins (HTTP daemon and CLI).");
        var verbs = new Dictionary<Command, Verb>();
        foreach (var command in commands)
        {
            var cli = new Command(command.Name, command.Summary);
            var options = new List<(OptionSpec Spec, Option Option)>();
            foreach (var spec in command.Options)
            {
                Option option = spec.TakesValue
                    ? new Option<string[]>("--" + spec.Name)
                    {
                        Description = spec.Help,
                        HelpName = spec.ValueName,
                        Arity = ArgumentArity.OneOrMore,
                        AllowMultipleArgumentsPerToken = false,
                    }
                    : new Option<bool>("--" + spec.Name) { Description = spec.Help, Arity = ArgumentArity.Zero };
                cli.Options.Add(option);
                options.Add((spec, option));
            }
            var positionals = new Argument<string[]>("arguments") { Arity = ArgumentArity.ZeroOrMore, Hidden = true };
            cli.Arguments.Add(positionals);
            var verb = new Verb(command, options, positionals);
            verbs[cli] = verb;
            cli.SetAction((result, token) => RunVerbAsync(verb, result, context, token));
            root.Subcommands.Add(cli);
        }
        var help = root.Options.OfType<HelpOption>().Single();
        help.Action = new HelpWithUsage(help.Action!, verbs);
        return (root, verbs);
    }

    /// <summary>The library's help, then the verb's usage line and its details (input and output formats, examples).</summary>
    private sealed class HelpWithUsage(CommandLineAction inner, Dictionary<Command, Verb> verbs) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            var code = ((SynchronousCommandLineAction)inner).Invoke(parseResult);
            if (verbs.GetValueOrDefault(parseResult.CommandResult.Command) is { Command: var command })
            {
                var output = parseResult.InvocationConfiguration.Output;
                output.WriteLine($"usage: {Program} {command.Name} {command.Usage}");
                if (command.Details.Length > 0)
                {
                    output.WriteLine();
                    output.WriteLine(command.Details.TrimEnd());
                }
            }
            return code;
        }
    }

    private sealed record Verb(ICommand Command, List<(OptionSpec Spec, Option Option)> Options, Argument<string[]> Positionals);

    /// <summary>The first problem with the command line, in this CLI's words (one line), or null.</summary>
    private static string? FirstError(string[] args, ParseResult parsed, Verb? verb)
    {
        if (verb is not null)
        {
            // The library would read "--flag=value" as the flag and a positional "value".
            foreach (var arg in args.TakeWhile(a => a != "--"))
                if (arg.StartsWith("--", StringComparison.Ordinal) && arg.IndexOf('=') is > 2 and var eq
                    && verb.Options.Any(o => !o.Spec.TakesValue && o.Spec.Name == arg[2..eq]))
                    return $"option {arg[..eq]} takes no value";
            // Before "--" a token that looks like an option and is none is a mistake, not a positional.
            foreach (var token in parsed.Tokens)
            {
                if (token.Type == TokenType.DoubleDash) break;
                if (token.Type == TokenType.Argument && token.Value.Length > 1 && token.Value[0] == '-'
                    && parsed.GetResult(verb.Positionals)?.Tokens.Contains(token) == true)
                    return $"unknown option '{token.Value.Split('=')[0]}' for '{verb.Command.Name}'";
            }
            foreach (var (spec, option) in verb.Options)
            {
                var result = parsed.GetResult(option);
                if (result is null || result.Implicit) continue;
                if (spec.TakesValue && result.Tokens.Count == 0) return $"option --{spec.Name} needs a value ({spec.ValueName})";
                if (spec.TakesValue && !spec.Repeatable && result.Tokens.Count > 1) return $"option --{spec.Name} given more than once";
            }
        }
        if (parsed.Errors.Count == 0) return null;
        var first = parsed.Errors[0];
        if (first.SymbolResult is OptionResult { Option: var o } && verb?.Options.FirstOrDefault(x => x.Option == o) is { Spec: { } s })
            return s.TakesValue ? $"option --{s.Name} needs a value ({s.ValueName})" : $"option --{s.Name} takes no value";
        if (verb is null && parsed.UnmatchedTokens.Count > 0)
            return $"unknown command '{parsed.UnmatchedTokens[0]}' (commands: {string.Join(", ", parsed.RootCommandResult.Command.Subcommands.Select(c => c.Name))})";
        return first.Message;
    }

    private static async Task<int> RunVerbAsync(Verb verb, ParseResult parsed, CommandContext context, CancellationToken cancellationToken)
    {
        var command = verb.Command;
        try
        {
            var args = new ParsedArgs();
            foreach (var (spec, option) in verb.Options)
            {
                if (parsed.GetResult(option) is not { Implicit: false } result) continue;
                if (!spec.TakesValue) args.Add(spec.Name, "true");
                else foreach (var token in result.Tokens) args.Add(spec.Name, token.Value);
            }
            args.Positionals.AddRange(parsed.GetValue(verb.Positionals) ?? []);
            return await command.RunAsync(args, context, cancellationToken);
        }
        catch (UsageException e)
        {
            context.Error.WriteLine($"{Program} {command.Name}: {e.Message} (see '{Program} {command.Name} --help')");
            return ExitUsage;
        }
        catch (CommandException e)
        {
            context.Error.WriteLine($"{Program} {command.Name}: error: {e.Message}");
            return ExitFailure;
        }
        catch (OperationCanceledException)
        {
            context.Error.WriteLine($"{Program} {command.Name}: cancelled");
            return ExitFailure;
        }
    }
}
