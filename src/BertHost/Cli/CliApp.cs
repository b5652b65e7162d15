using System.Reflection;
using System.Text;

namespace BertHost.Cli;

/// <summary>Dispatches <c>berthost VERB ...</c>, prints help, and turns failures into one line and an exit code.</summary>
public sealed class CliApp(IReadOnlyList<ICommand> commands)
{
    public const int ExitOk = 0;
    public const int ExitFailure = 1;
    public const int ExitUsage = 2;

    private const string Program = "berthost";

    /// <summary>The application with every verb.</summary>
    public static CliApp CreateDefault() => new(
    [
        new ServeCommand(), new ValidateCommand(), new PredictCommand(), new HeadsCommand(), new EmbedCommand(), new InitModelCommand(), new ImportOnnxCommand(), new TrainCommand(), new EvalCommand(), new PretrainCommand(), new FillMaskCommand(), new AdaptersCommand(),
    ]);

    public async Task<int> RunAsync(string[] args, CommandContext context, CancellationToken cancellationToken = default)
    {
        if (args.Length == 0)
        {
            context.Error.Write(GeneralHelp());
            return ExitUsage;
        }
        var verb = args[0];
        if (verb is "--help" or "-h" or "help")
        {
            if (args.Length > 1 && Find(args[1]) is { } topic)
            {
                context.Out.Write(Help(topic));
                return ExitOk;
            }
            context.Out.Write(GeneralHelp());
            return ExitOk;
        }
        if (verb is "--version")
        {
            context.Out.WriteLine($"{Program} {Assembly.GetExecutingAssembly().GetName().Version}");
            return ExitOk;
        }
        var command = Find(verb);
        if (command is null)
        {
            context.Error.WriteLine($"{Program}: unknown command '{verb}' (commands: {string.Join(", ", commands.Select(c => c.Name))}; see '{Program} --help')");
            return ExitUsage;
        }
        var rest = args.Skip(1).ToList();
        if (rest.Contains("--help") || rest.Contains("-h"))
        {
            context.Out.Write(Help(command));
            return ExitOk;
        }
        try
        {
            var parsed = ParsedArgs.Parse(rest, command.Options, command.Name);
            return await command.RunAsync(parsed, context, cancellationToken);
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

    private ICommand? Find(string name) => commands.FirstOrDefault(c => c.Name == name);

    private string GeneralHelp()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"usage: {Program} <command> [options]");
        sb.AppendLine();
        sb.AppendLine("commands:");
        foreach (var c in commands) sb.AppendLine($"  {c.Name,-12} {c.Summary}");
        sb.AppendLine();
        sb.AppendLine($"'{Program} <command> --help' describes a command's options.");
        return sb.ToString();
    }

    private static string Help(ICommand command)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"usage: {Program} {command.Name} {command.Usage}");
        sb.AppendLine();
        sb.AppendLine(command.Summary);
        sb.AppendLine();
        sb.AppendLine("options:");
        foreach (var o in command.Options)
        {
            var left = o.TakesValue ? $"--{o.Name} {o.ValueName}" : $"--{o.Name}";
            sb.AppendLine($"  {left,-26} {o.Help}");
        }
        sb.AppendLine($"  {"--help",-26} show this help");
        if (command.Details.Length > 0)
        {
            sb.AppendLine();
            sb.AppendLine(command.Details.TrimEnd());
        }
        return sb.ToString();
    }
}
