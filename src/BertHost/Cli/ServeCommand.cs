using BertHost.Api;
using BertHost.Core.Jobs;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BertHost.Cli;

/// <summary>
/// <c>berthost serve</c>: the daemon. Loads the deployment (body, heads), serves the HTTP API until SIGINT/SIGTERM (or a
/// systemd stop), then stops taking requests, drains the ones in flight and releases the body.
/// </summary>
public sealed class ServeCommand : ICommand
{
    public string Name => "serve";
    public string Summary => "Serve a deployment over HTTP (the daemon)";
    public string Usage => "--config FILE [--urls URLS]";

    public string Details => """
        Loads body and heads, then serves the HTTP API on host.urls (127.0.0.1:5080 unless configured).
        A head that fails to load is reported in /v1/heads and /readyz; the others serve. Training jobs
        (POST /v1/jobs) run in the background while serving when the deployment enables them (jobs: enabled: true);
        their records live in jobs.directory. A config problem (a plugin's sha256 pin mismatch included), a body that
        does not load, or a non-loopback address without auth keys stops the host before it listens (exit 1). SIGINT/SIGTERM drain in-flight requests
        (host.shutdown_timeout_seconds) before exit; under systemd (Type=notify) readiness and stopping are reported.
        example:
          berthost serve --config config/default.yaml
          curl -s localhost:5080/v1/heads/sentiment/predict -H 'content-type: application/json' -d '{"inputs": [{"text": "great"}]}'
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("config", "deployment YAML", "FILE"),
        new("urls", "listen addresses, overriding host.urls (e.g. http://127.0.0.1:0 for a free port)", "URLS"),
    ];

    public async Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var config = EngineLoader.LoadConfig(args, context.Error);
        var options = ApiOptions.FromConfig(config);
        if (args.Get("urls") is { } urls) options = options with { Urls = urls };
        // Checked before anything loads: a host other machines can reach must ask for keys (or say it serves anyone).
        if (Core.Config.BindAddresses.Problem(options.Urls, options.Auth) is { } refused)
            throw new CommandException($"refusing to serve: {options.Urls} {refused}");
        using var loggers = EngineLoader.StderrLogging(LogLevel.Information);
        using var metrics = new ServingMetrics();
        await using var engine = EngineLoader.Start(config, loggers, metrics);

        // Jobs run only where the deployment enables them (jobs: enabled: true); otherwise /v1/jobs answers 404.
        await using var jobs = config.Jobs.Enabled ? JobRunner.Start(engine, loggers, metrics) : null;
        await using var app = ApiServer.Build(options, engine, metrics, jobs: jobs);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException e)
        {
            throw new CommandException($"cannot listen on {options.Urls}: {e.Message}");
        }
        var ready = engine.Heads.Count(h => h.IsReady);
        await context.Out.WriteLineAsync($"berthost: serving {ready} of {engine.Heads.Count} heads on {string.Join(", ", app.Urls)}");
        await context.Out.FlushAsync(cancellationToken);
        // Returns once SIGINT/SIGTERM (or the token) asks to stop, after in-flight requests have drained.
        await app.WaitForShutdownAsync(cancellationToken);
        return CliApp.ExitOk;
    }
}
