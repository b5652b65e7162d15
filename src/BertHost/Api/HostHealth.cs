using BertHost.Core.Jobs;
using BertHost.Core.Serving;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace BertHost.Api;

/// <summary>
/// Liveness and readiness on Microsoft.Extensions.Diagnostics.HealthChecks. <c>live</c>: the process answers (what
/// <c>/healthz</c> and <c>/v2/health/live</c> report). <c>ready</c>: the host is not stopping and the engine is ready —
/// no head the deployment requires (<c>required</c>, default true) failed to load (<c>/readyz</c>,
/// <c>/v2/health/ready</c>). Load balancers and Kubernetes probes read the status code: 200 or 503.
/// </summary>
internal static class HostHealth
{
    public const string Live = "live";
    public const string Ready = "ready";

    public static IHealthChecksBuilder AddHostHealth(this IHealthChecksBuilder builder) => builder
        .AddCheck(Live, () => HealthCheckResult.Healthy("the process answers"), tags: [Live])
        .AddCheck<ReadinessCheck>(Ready, tags: [Ready]);

    public static async Task<HealthReport> CheckAsync(HealthCheckService health, string tag, CancellationToken cancellationToken) =>
        await health.CheckHealthAsync(r => r.Tags.Contains(tag), cancellationToken);

    /// <summary>Not ready while stopping, or while a required head failed to load (its name and reason in the data).</summary>
    internal sealed class ReadinessCheck(IInferenceEngine engine, IHostApplicationLifetime lifetime) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            if (lifetime.ApplicationStopping.IsCancellationRequested) return Task.FromResult(HealthCheckResult.Unhealthy("stopping"));
            if (engine.IsReady) return Task.FromResult(HealthCheckResult.Healthy("ready"));
            var failed = engine.Heads.Where(h => h.Required && h.State == HeadStates.Failed).Select(h => h.Name).ToList();
            return Task.FromResult(HealthCheckResult.Unhealthy($"required head(s) failed to load: {string.Join(", ", failed)}"));
        }
    }
}

/// <summary>
/// The engine as a hosted service of the web host: it is loaded before the host starts (a body that does not load
/// stops the host before it listens), and released when the host stops, after the server has drained its requests
/// (the web server is the last hosted service to start, so the first to stop).
/// </summary>
internal sealed class EngineService(IInferenceEngine engine) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (engine is IAsyncDisposable disposable) await disposable.DisposeAsync();
    }
}

/// <summary>The training jobs runner as a hosted service: stopping the host stops its workers (running jobs are recorded interrupted).</summary>
internal sealed class JobRunnerService(JobRunner jobs) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken) => await jobs.DisposeAsync();
}
