using BertHost.Core.Config;
using BertHost.Core.Plugins;
using Microsoft.Extensions.Logging.Abstractions;

namespace BertHost.Cli;

/// <summary>
/// <c>berthost validate</c>: reads a deployment file and checks it as the host would at start-up (keys, types,
/// ranges, environment references, model folder, plugin assemblies and sha256 pins, head weights and labels), then loads
/// each head's plugin and has its kind check the head's options and labels; no weights are loaded. Every problem is
/// reported, each with its line.
/// </summary>
public sealed class ValidateCommand : ICommand
{
    public string Name => "validate";
    public string Summary => "Check a deployment config (YAML), head options included, without loading the model";
    public string Usage => "--config FILE";

    public string Details => """
        On success prints one line and exits 0:
          FILE: OK (1 body, 2 heads: sentiment (text-classification), ner (token-classification))
        Otherwise prints every problem to stderr, one per line, and exits 1:
          FILE:LINE: PATH: message
        Head options and labels are checked by the head's plugin (loaded for this; no weights are read), e.g.
          FILE:7: heads[0].options.dropout: options.dropout must be a number, got the string "high"
          FILE:4: heads[1].kind: no head kind 'text-clasification' in ...; did you mean 'text-classification'?
        example:
          berthost validate --config config/berthost.yaml
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("config", "the deployment file to check", "FILE"),
    ];

    public Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        if (args.Positionals.Count > 0) throw new UsageException($"unexpected argument '{args.Positionals[0]}'");
        var file = args.Require("config");
        HostConfig config;
        using var catalog = new PluginCatalog(NullLogger.Instance);
        try
        {
            config = HostConfigLoader.Load(file, headValidator: new PluginHeadValidator(catalog));
        }
        catch (ConfigException e)
        {
            foreach (var line in e.Lines) context.Error.WriteLine(line);
            return Task.FromResult(CliApp.ExitFailure);
        }
        context.Out.WriteLine($"{file}: OK ({Summarize(config)})");
        return Task.FromResult(CliApp.ExitOk);
    }

    /// <summary><c>1 body, 2 heads: a (kind), b (kind)</c>.</summary>
    internal static string Summarize(HostConfig config)
    {
        var count = config.Heads.Count;
        var heads = $"{count} head{(count == 1 ? "" : "s")}";
        return count == 0
            ? $"1 body, {heads}"
            : $"1 body, {heads}: {string.Join(", ", config.Heads.Select(h => $"{h.Name} ({h.Kind})"))}";
    }
}
