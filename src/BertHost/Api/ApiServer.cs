using System.Diagnostics;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BertHost.Api;

/// <summary>
/// The HTTP API: Kestrel on <see cref="ApiOptions.Urls"/> serving minimal-API routes over an <see cref="IInferenceEngine"/>.
/// Every answer is JSON (except <c>/metrics</c>); every failure is <c>{"error": {"code", "message", "field"}}</c>.
/// </summary>
public static class ApiServer
{
    /// <summary>Every route the API serves: method and pattern (the OpenAPI document describes exactly these).</summary>
    public static IReadOnlyList<(string Method, string Pattern)> Routes { get; } =
    [
        ("GET", "/v1/heads"),
        ("GET", "/v1/heads/{name}"),
        ("POST", "/v1/heads/{name}/predict"),
        ("POST", "/v1/predict"),
        ("GET", "/v1/body"),
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/{id}"),
        ("DELETE", "/v1/jobs/{id}"),
        ("POST", "/v1/jobs/{id}/promote"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ];

    /// <summary>The route label of requests that matched no route (bounded label values in metrics).</summary>
    public const string UnmatchedRoute = "unmatched";

    /// <summary>
    /// Builds the application; start it with <c>StartAsync</c>/<c>RunAsync</c>, stop it with <c>StopAsync</c> (in-flight
    /// requests drain for up to <see cref="ApiOptions.ShutdownTimeout"/>).
    /// </summary>
    /// <param name="logging">Where logs go; null = a one-line console logger (ASP.NET Core's own categories at Warning).</param>
    /// <param name="jobs">The training jobs runner; null = the <c>/v1/jobs</c> routes answer 503.</param>
    public static WebApplication Build(ApiOptions options, IInferenceEngine engine, ServingMetrics metrics, ILoggerProvider? logging = null,
        Core.Jobs.JobRunner? jobs = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(metrics);
        options.Validate();

        // The empty builder reads no appsettings.json, environment variables or command line, and watches no files:
        // the deployment YAML is the only configuration.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions
        {
            ApplicationName = "berthost",
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.WebHost.UseKestrelCore();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // JsonRequestReader enforces MaxRequestBytes: a declared Content-Length above it is answered 413 before any
            // byte is read, a chunked body as soon as it passes the limit. Kestrel then discards (never buffers) the rest
            // of the body for up to 5 s so that clients that only read the response after sending everything (HttpClient,
            // requests) still get the JSON 413 instead of a reset connection. Kestrel's own limit is only a backstop:
            // bodies declared above it get the connection closed.
            kestrel.Limits.MaxRequestBodySize = BodySizeBackstop(options.MaxRequestBytes);
        });
        builder.WebHost.UseUrls(options.Urls);
        builder.Services.AddRoutingCore();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownTimeout);
        // Under systemd (Type=notify) this reports readiness and stopping; elsewhere it does nothing.
        builder.Services.AddSystemd();

        builder.Logging.ClearProviders();
        if (logging is not null)
        {
            builder.Logging.AddProvider(logging);
        }
        else
        {
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
            builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        }

        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(engine);
        builder.Services.AddSingleton(metrics);

        var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("BertHost.Api");
        var endpoints = new ApiEndpoints(engine, metrics, options, app.Lifetime);

        app.Use((context, next) => HandleAsync(context, next, metrics, logger));
        app.UseRouting();

        app.MapGet("/v1/heads", endpoints.GetHeadsAsync);
        app.MapGet("/v1/heads/{name}", endpoints.GetHeadAsync);
        app.MapPost("/v1/heads/{name}/predict", endpoints.PredictOneAsync);
        app.MapPost("/v1/predict", endpoints.PredictManyAsync);
        app.MapGet("/v1/body", endpoints.BodyAsync);
        var jobEndpoints = new JobEndpoints(jobs, options);
        app.MapPost("/v1/jobs", jobEndpoints.SubmitAsync);
        app.MapGet("/v1/jobs", jobEndpoints.ListAsync);
        app.MapGet("/v1/jobs/{id}", jobEndpoints.GetAsync);
        app.MapDelete("/v1/jobs/{id}", jobEndpoints.CancelAsync);
        app.MapPost("/v1/jobs/{id}/promote", jobEndpoints.PromoteAsync);
        app.MapGet("/healthz", endpoints.HealthAsync);
        app.MapGet("/readyz", endpoints.ReadyAsync);
        app.MapGet("/metrics", endpoints.MetricsAsync);
        app.MapGet("/openapi.json", endpoints.OpenApiAsync);
        return app;
    }

    /// <summary>Outermost middleware: turns every failure into the JSON error shape and records metrics.</summary>
    private static async Task HandleAsync(HttpContext context, RequestDelegate next, ServingMetrics metrics, ILogger logger)
    {
        var started = Stopwatch.GetTimestamp();
        var info = new RequestInfo();
        context.Items[RequestInfo.Key] = info;
        string? errorCode = null;
        try
        {
            await next(context);
            var response = context.Response;
            if (!response.HasStarted && response.ContentType is null && response.ContentLength is null)
            {
                // Routing's own answers (no route: 404; route without that method: 405 with Allow) carry no body.
                if (response.StatusCode == StatusCodes.Status404NotFound)
                {
                    errorCode = ApiErrorCodes.NotFound;
                    await ApiResponses.WriteErrorAsync(context, 404, errorCode, $"no route {context.Request.Method} {context.Request.Path}", null);
                }
                else if (response.StatusCode == StatusCodes.Status405MethodNotAllowed)
                {
                    errorCode = ApiErrorCodes.MethodNotAllowed;
                    var allow = response.Headers.Allow.ToString();
                    await ApiResponses.WriteErrorAsync(context, 405, errorCode,
                        $"method {context.Request.Method} is not allowed on {context.Request.Path}" + (allow.Length > 0 ? $" (allowed: {allow})" : ""), null);
                }
            }
        }
        catch (Exception e) when (context.RequestAborted.IsCancellationRequested && e is OperationCanceledException or IOException or BadHttpRequestException)
        {
            // The client went away: nobody to answer.
            errorCode = "client_closed";
            context.Response.StatusCode = 499;
        }
        catch (Exception e)
        {
            var (status, code, message, field) = Classify(e);
            errorCode = code;
            if (status >= 500 && e is not ServingException) logger.LogError(e, "{Method} {Path} failed", context.Request.Method, context.Request.Path);
            else if (status >= 500) logger.LogWarning("{Method} {Path}: {Status} {Code}: {Message}", context.Request.Method, context.Request.Path, status, code, message);
            else logger.LogDebug("{Method} {Path}: {Status} {Code}: {Message}", context.Request.Method, context.Request.Path, status, code, message);
            if (context.Response.HasStarted)
            {
                context.Abort();
            }
            else
            {
                context.Response.Clear();
                await ApiResponses.WriteErrorAsync(context, status, code, message, field);
            }
        }
        finally
        {
            var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? UnmatchedRoute;
            metrics.RecordRequest(route, info.Head, info.Inputs);
            if (errorCode is not null) metrics.RecordError(info.Head, errorCode);
            metrics.RecordResponse(route, context.Response.StatusCode, Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>Kestrel's limit: 16 × the API's limit, at least 64 MiB.</summary>
    public static long BodySizeBackstop(long maxRequestBytes) =>
        maxRequestBytes > long.MaxValue / 16 ? long.MaxValue : Math.Max(maxRequestBytes * 16, 64L << 20);

    private static (int Status, string Code, string Message, string? Field) Classify(Exception e)
    {
        switch (e)
        {
            case ApiException api:
                return (api.Status, api.Code, api.Message, api.Field);
            case ServingException serving:
                var (status, code) = ApiErrorCodes.Of(serving.Error);
                return (status, code, serving.Message, serving.Field);
            case BadHttpRequestException bad:
                return bad.StatusCode switch
                {
                    StatusCodes.Status413PayloadTooLarge => (413, ApiErrorCodes.PayloadTooLarge, "request body is too large", null),
                    _ => (bad.StatusCode is >= 400 and < 500 ? bad.StatusCode : 400, ApiErrorCodes.BadRequest, "malformed request: " + bad.Message, null),
                };
            case OperationCanceledException:
                return (503, ApiErrorCodes.Unavailable, "the request was cancelled (the host is shutting down)", null);
            default:
                return (500, ApiErrorCodes.InternalError, "internal error; see the host's log", null);
        }
    }
}
