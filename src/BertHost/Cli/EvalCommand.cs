using BertHost.Core.Training;
using Microsoft.Extensions.Logging;

namespace BertHost.Cli;

/// <summary><c>berthost eval</c>: the metrics of a head of a deployment on labelled data, as one JSON object.</summary>
public sealed class EvalCommand : ICommand
{
    public string Name => "eval";
    public string Summary => "Print a head's metrics on labelled data as one JSON object";
    public string Usage => "--config FILE --head NAME --data PATH [--format NAME]";
    public string Details => """
        example:
          berthost eval --config config/default.yaml --head sentiment --data sst2/dev.tsv
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("config", "deployment YAML", "FILE"),
        new("head", "head to evaluate", "NAME"),
        new("data", "labelled data", "PATH"),
        new("format", "data format (default: from the file)", "NAME"),
        new("batch-size", "examples per batch (default 16)", "N"),
        new("as-served", "load the body as serve does (body.quantize, body.dtype refusals, prepacked weights): the metrics of the served head"),
        new("verbose", "log loading details to stderr"),
    ];

    public Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var headName = args.Require("head");
        var dataPath = args.Require("data");
        var batchSize = args.GetInt("batch-size", 1) ?? 16;
        var config = EngineLoader.LoadConfig(args, context.Error);
        using var loggers = EngineLoader.StderrLogging(args.Has("verbose") ? LogLevel.Information : LogLevel.Warning);
        using var session = TrainCommand.Open(config, [headName], loggers, asServed: args.Has("as-served"));
        if (session.Head.TrainedOnFingerprint is { } trainedOn && trainedOn != session.Body.Fingerprint)
            context.Error.WriteLine($"berthost eval: warning: head '{headName}' was trained on body {trainedOn}, not on the configured body {session.Body.Fingerprint}");
        var data = TrainCommand.ReadExamples(session.Head, dataPath, args.Get("format"));
        var metrics = new Trainer(session.Body, session.Head, new TrainingOptions { BatchSize = batchSize }, session.Adapters).Evaluate(data);
        context.Out.WriteLine(TrainCommand.Metrics(metrics).ToJsonString(JsonOutput.Serializer));
        context.Out.Flush();
        return Task.FromResult(CliApp.ExitOk);
    }
}
