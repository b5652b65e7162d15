using System.Text.Json.Nodes;
using BertHost.Core.Serving;
using Microsoft.Extensions.Logging;

namespace BertHost.Cli;

/// <summary><c>berthost heads</c>: loads a deployment and lists its heads with their state.</summary>
public sealed class HeadsCommand : ICommand
{
    public string Name => "heads";
    public string Summary => "Load a deployment and list its heads (one JSON object per line); exit 1 if any failed";
    public string Usage => "--config FILE";
    public string Details => "Each line: {\"name\", \"kind\", \"state\", \"error\"?, \"labels\", \"plugin\", \"plugin_sha256\", \"details\"}.";

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("config", "deployment YAML", "FILE"),
        new("verbose", "log loading details to stderr"),
    ];

    public async Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var config = EngineLoader.LoadConfig(args, context.Error);
        using var loggers = EngineLoader.StderrLogging(args.Has("verbose") ? LogLevel.Information : LogLevel.Critical);
        await using var engine = EngineLoader.Start(config, loggers, new ServingMetrics());
        foreach (var head in engine.Heads)
        {
            var status = engine.FindHead(head.Name, withDetails: true)!;
            var line = new JsonObject
            {
                ["name"] = status.Name,
                ["kind"] = status.Kind,
                ["state"] = status.State,
            };
            if (status.Error is not null) line["error"] = status.Error;
            line["labels"] = new JsonArray(status.Labels.Select(l => (JsonNode)l).ToArray());
            line["plugin"] = status.Plugin;
            line["plugin_sha256"] = status.PluginSha256;
            line["details"] = status.Details?.DeepClone();
            await context.Out.WriteLineAsync(line.ToJsonString(JsonOutput.Serializer));
        }
        return engine.Heads.All(h => h.IsReady) ? CliApp.ExitOk : CliApp.ExitFailure;
    }
}
