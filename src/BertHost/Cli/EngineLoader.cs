using BertHost.Core.Bert;
using BertHost.Core.Config;
using BertHost.Core.Serving;
using Microsoft.Extensions.Logging;
using BertHost.Core.Checkpoints;

namespace BertHost.Cli;

/// <summary>Loads a deployment's config and engine for the verbs that serve (serve, predict, heads).</summary>
internal static class EngineLoader
{
    /// <summary>
    /// The deployment for serving: every problem stops the host, except a head plugin that cannot be found or fails its
    /// sha256 pin — that head is reported failed (the plugin loader gives the same reason) and the others serve.
    /// </summary>
    public static HostConfig LoadConfig(ParsedArgs args, TextWriter error)
    {
        var path = args.Require("config");
        try
        {
            var config = HostConfigLoader.Load(path, tolerateHeadPluginProblems: true);
            foreach (var problem in config.HeadPluginProblems) error.WriteLine($"berthost: warning: {problem} (this head will not load)");
            return config;
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
