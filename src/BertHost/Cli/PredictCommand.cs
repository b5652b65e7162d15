using System.Text.Json;
using BertHost.Core.Serving;
using Microsoft.Extensions.Logging;

namespace BertHost.Cli;

/// <summary><c>berthost predict</c>: runs inputs through one head of a deployment, without HTTP; same JSON as the API.</summary>
public sealed class PredictCommand : ICommand
{
    public string Name => "predict";
    public string Summary => "Run inputs through a head of a deployment and print one JSON output per line";
    public string Usage => "--config FILE --head NAME [--input FILE.jsonl] [--parameters JSON] [TEXT ...]";

    public string Details => """
        Inputs: each TEXT argument becomes {"text": TEXT}; each line of --input ('-' = stdin) is one input as the
        HTTP API takes it (an object such as {"text": "...", "text_pair": "..."}, or a string).
        Output: one line per input, in order: exactly what POST /v1/heads/NAME/predict returns for it.
        example:
          berthost predict --config config/default.yaml --head sentiment "a gripping, funny film"
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("config", "deployment YAML", "FILE"),
        new("head", "head to run", "NAME"),
        new("input", "JSON Lines file of inputs, or '-' for stdin", "FILE"),
        new("parameters", "request parameters as a JSON object, e.g. '{\"top_k\": 2}'", "JSON"),
        new("verbose", "log loading and serving details to stderr"),
    ];

    public async Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var headName = args.Require("head");
        var parameters = ParseParameters(args.Get("parameters"));
        var inputs = args.Positionals.Select(t => JsonSerializer.SerializeToElement(new { text = t })).ToList();
        if (args.Get("input") is { } path) inputs.AddRange(await JsonLines.ReadAsync(path, context.In, cancellationToken));
        if (inputs.Count == 0) throw new UsageException("no input: give TEXT arguments or --input FILE");
        var config = EngineLoader.LoadConfig(args, context.Error);

        using var loggers = EngineLoader.StderrLogging(args.Has("verbose") ? LogLevel.Information : LogLevel.Warning);
        await using var engine = EngineLoader.Start(config, loggers, new ServingMetrics());
        var head = engine.FindHead(headName)
            ?? throw new CommandException($"no head named '{headName}' in {config.SourcePath} (heads: {string.Join(", ", engine.Heads.Select(h => h.Name))})");
        if (!head.IsReady) throw new CommandException($"head '{headName}' is {head.State}: {head.Error}");

        var failures = 0;
        // One input per call keeps a bad input from hiding the outputs of the good ones.
        for (var i = 0; i < inputs.Count; i++)
        {
            try
            {
                var output = await engine.PredictAsync(headName, [inputs[i]], parameters, cancellationToken);
                await context.Out.WriteLineAsync(output[0].ToJsonString(JsonOutput.Serializer));
            }
            catch (ServingException e)
            {
                failures++;
                var field = e.Field?.Replace("inputs[0]", $"input {i + 1}") ?? $"input {i + 1}";
                await context.Error.WriteLineAsync($"berthost predict: {field}: {e.Message}");
                // A bug in the head's plugin: its stack trace is what its author needs.
                if (args.Has("verbose") && Api.ApiServer.PluginBug(e) is { } bug) await context.Error.WriteLineAsync(bug.ToString());
            }
        }
        await context.Out.FlushAsync(cancellationToken);
        return failures == 0 ? CliApp.ExitOk : CliApp.ExitFailure;
    }

    private static JsonElement ParseParameters(string? json)
    {
        if (json is null) return JsonDocument.Parse("{}").RootElement.Clone();
        try
        {
            var element = JsonDocument.Parse(json).RootElement.Clone();
            return element.ValueKind == JsonValueKind.Object ? element : throw new UsageException("--parameters must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new UsageException($"--parameters is not valid JSON: {e.Message}");
        }
    }
}
