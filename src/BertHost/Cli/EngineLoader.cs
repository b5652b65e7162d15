using BertHost.Core.Bert;
using BertHost.Core.Config;
using BertHost.Core.Serving;
using Microsoft.Extensions.Logging;

namespace BertHost.Cli;

/// <summary>Loads a deployment's config and engine for the verbs that serve (serve, predict, heads).</summary>
internal static class EngineLoader
{
    public static HostConfig LoadConfig(ParsedArgs args)
    {
        var path = args.Require("config");
        try
        {
            return HostConfigLoader.Load(path);
        }
        catch (ConfigException e)
        {
            throw new CommandException(e.Message);
        }
    }

    public static InferenceEngine Start(HostConfig config, ILoggerFactory loggers, ServingMetrics metrics)
    {
        try
        {
            return InferenceEngine.Start(config, loggers, metrics);
        }
        catch (BodyLoadException e)
        {
            throw new CommandException($"body: {e.Message}");
        }
    }

    /// <summary>Logs to stderr, so stdout stays machine-readable for predict and heads.</summary>
    public static ILoggerFactory StderrLogging(LogLevel minimum) => LoggerFactory.Create(builder => builder
        .SetMinimumLevel(minimum)
        .AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        })
        .AddFilter("Microsoft", LogLevel.Warning)
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
}
