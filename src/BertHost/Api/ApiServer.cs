using System.Diagnostics;
using BertHost.Core.Config;
using BertHost.Core.IO;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http.Timeouts;
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
    /// <param name="jobs">The training jobs runner; null = jobs are disabled: the <c>/v1/jobs</c> routes answer 404 <c>jobs_disabled</c>.</param>
    /// <exception cref="BindRefusedException">The addresses reach beyond this machine and the options ask for no key.</exception>
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
            // (POST /v1/jobs raises it for its own requests to the upload limit's backstop.)
            kestrel.Limits.MaxRequestBodySize = BodySizeBackstop(options.MaxRequestBytes);
            if (options.Https is { } https) kestrel.ConfigureHttpsDefaults(tls => HttpsSetup.Apply(tls, https));
        });
        builder.WebHost.UseUrls(options.Urls);
        builder.Services.AddRoutingCore();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownTimeout);
        // Under systemd (Type=notify) this reports readiness and stopping; elsewhere it does nothing.
        builder.Services.AddSystemd();

        // Who may do what: API keys (auth:) checked by an authentication handler, one policy per scope. A route that
        // declares neither a scope nor AllowAnonymous falls back to the admin scope.
        builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.Scheme)
            .AddScheme<ApiKeyOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.Scheme, o => o.Auth = options.Auth);
        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(Scopes.Predict, p => p.RequireClaim(ApiKeyAuthenticationHandler.ScopeClaim, Scopes.Predict))
            .AddPolicy(Scopes.Train, p => p.RequireClaim(ApiKeyAuthenticationHandler.ScopeClaim, Scopes.Train))
            .AddPolicy(Scopes.Admin, p => p.RequireClaim(ApiKeyAuthenticationHandler.ScopeClaim, Scopes.Admin))
            .SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireClaim(ApiKeyAuthenticationHandler.ScopeClaim, Scopes.Admin).Build());
        // The Host header must name this host (DNS rebinding cannot reach a loopback-bound host through a browser).
        var allowedHosts = AllowedHosts(options);
        builder.Services.AddHostFiltering(o =>
        {
            o.AllowedHosts = allowedHosts.ToList();
            o.IncludeFailureMessage = false;
        });
        if (options.CorsOrigins.Count > 0)
            builder.Services.AddCors(o => o.AddDefaultPolicy(p => p.WithOrigins([.. options.CorsOrigins]).WithMethods("GET", "POST", "DELETE")
                .WithHeaders("Authorization", "Content-Type", ApiKeyAuthenticationHandler.ApiKeyHeader)));
        builder.Services.AddRequestTimeouts(o => o.DefaultPolicy = new RequestTimeoutPolicy
        {
            Timeout = options.RequestTimeout,
            TimeoutStatusCode = StatusCodes.Status504GatewayTimeout,
            WriteTimeoutResponse = context => ApiResponses.WriteErrorAsync(context, StatusCodes.Status504GatewayTimeout, ApiErrorCodes.Timeout,
                $"the request took longer than {options.RequestTimeout.TotalSeconds:0.###} s (host.request_timeout_seconds) and was cancelled", null),
        });

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
        var loggers = app.Services.GetRequiredService<ILoggerFactory>();
        var logger = loggers.CreateLogger("BertHost.Api");
        logger.LogInformation("answering Host headers {Hosts}{Auth}", string.Join(", ", allowedHosts),
            options.Auth is null ? "; no auth section: every request may do everything" : $"; {options.Auth.Keys.Count} API key(s)");
        var endpoints = new ApiEndpoints(engine, metrics, options, app.Lifetime);

        app.Use((context, next) => HandleAsync(context, next, metrics, logger, options));
        app.UseHostFiltering();
        app.UseRouting();
        if (options.CorsOrigins.Count > 0) app.UseCors();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRequestTimeouts();

        app.MapGet("/v1/heads", endpoints.GetHeadsAsync).RequireAuthorization(Scopes.Predict);
        app.MapGet("/v1/heads/{name}", endpoints.GetHeadAsync).RequireAuthorization(Scopes.Predict);
        app.MapPost("/v1/heads/{name}/predict", endpoints.PredictOneAsync).RequireAuthorization(Scopes.Predict);
        app.MapPost("/v1/predict", endpoints.PredictManyAsync).RequireAuthorization(Scopes.Predict);
        app.MapGet("/v1/body", endpoints.BodyAsync).RequireAuthorization(Scopes.Predict);
        var jobEndpoints = new JobEndpoints(jobs, options, loggers.CreateLogger("BertHost.Api.Jobs"));
        app.MapPost("/v1/jobs", jobEndpoints.SubmitAsync).RequireAuthorization(Scopes.Train);
        app.MapGet("/v1/jobs", jobEndpoints.ListAsync).RequireAuthorization(Scopes.Train);
        app.MapGet("/v1/jobs/{id}", jobEndpoints.GetAsync).RequireAuthorization(Scopes.Train);
        app.MapDelete("/v1/jobs/{id}", jobEndpoints.CancelAsync).RequireAuthorization(Scopes.Train);
        app.MapPost("/v1/jobs/{id}/promote", jobEndpoints.PromoteAsync).RequireAuthorization(Scopes.Admin);
        app.MapGet("/healthz", endpoints.HealthAsync).AllowAnonymous();
        app.MapGet("/readyz", endpoints.ReadyAsync).AllowAnonymous();
        app.MapGet("/metrics", endpoints.MetricsAsync).RequireAuthorization(Scopes.Predict);
        app.MapGet("/openapi.json", endpoints.OpenApiAsync).AllowAnonymous();
        return app;
    }

    /// <summary>
    /// The Host header values answered: <c>host.allowed_hosts</c>, or else the names the host binds plus localhost,
    /// 127.0.0.1 and [::1]; a wildcard bind adds this machine's name and addresses.
    /// </summary>
    public static IReadOnlyList<string> AllowedHosts(ApiOptions options)
    {
        if (options.AllowedHosts is { Count: > 0 } configured) return configured;
        var hosts = new List<string> { "localhost", "127.0.0.1", "[::1]" };
        foreach (var host in BindAddresses.Hosts(options.Urls))
        {
            if (host is "*" or "+" or "0.0.0.0" or "::")
            {
                hosts.Add(System.Net.Dns.GetHostName());
                foreach (var address in System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
                             .SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(a => a.Address))
                    hosts.Add(address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address.ToString().Split('%')[0]}]" : address.ToString());
            }
            else
            {
                hosts.Add(host.Contains(':') ? $"[{host}]" : host);
            }
        }
        return hosts.Distinct(StringComparer.OrdinalIgnoreCase).ToList();
    }

    /// <summary>Outermost middleware: turns every failure into the JSON error shape and records metrics.</summary>
    private static async Task HandleAsync(HttpContext context, RequestDelegate next, ServingMetrics metrics, ILogger logger, ApiOptions options)
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
                // Routing's own answers (no route: 404; route without that method: 405 with Allow) carry no body, nor
                // does host filtering's 400 for a Host header this host does not answer to.
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
                else if (response.StatusCode == StatusCodes.Status400BadRequest && context.GetEndpoint() is null)
                {
                    errorCode = ApiErrorCodes.HostNotAllowed;
                    await ApiResponses.WriteErrorAsync(context, 400, errorCode,
                        "the Host header names a host this server does not answer to (host.allowed_hosts)", null);
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
            var (status, code, message, field, retry) = Classify(e, options);
            errorCode = code;
            var key = ApiKeyAuthenticationHandler.KeyOf(context) ?? "-";
            if (status >= 500 && e is not ServingException) logger.LogError(e, "{Method} {Path} (key {Key}) failed", context.Request.Method, context.Request.Path, key);
            else if (status >= 500) logger.LogWarning(e, "{Method} {Path} (key {Key}): {Status} {Code}: {Message}", context.Request.Method, context.Request.Path, key, status, code, e.Message);
            else logger.LogDebug("{Method} {Path} (key {Key}): {Status} {Code}: {Message}", context.Request.Method, context.Request.Path, key, status, code, message);
            if (context.Response.HasStarted)
            {
                context.Abort();
            }
            else
            {
                context.Response.Clear();
                await ApiResponses.WriteErrorAsync(context, status, code, message, field, retry);
            }
        }
        finally
        {
            var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? UnmatchedRoute;
            errorCode ??= info.ErrorCode;
            metrics.RecordRequest(route, info.Head, info.Inputs);
            if (errorCode is not null) metrics.RecordError(info.Head, errorCode);
            metrics.RecordResponse(route, context.Response.StatusCode, Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>Kestrel's limit: 16 × the API's limit, at least 64 MiB.</summary>
    public static long BodySizeBackstop(long maxRequestBytes) =>
        maxRequestBytes > long.MaxValue / 16 ? long.MaxValue : Math.Max(maxRequestBytes * 16, 64L << 20);

    /// <summary>Status, code, message (server paths redacted), field, and whether waiting helps (Retry-After).</summary>
    private static (int Status, string Code, string Message, string? Field, bool Retry) Classify(Exception e, ApiOptions options)
    {
        switch (e)
        {
            case ApiException api:
                return (api.Status, api.Code, api.Message, api.Field, api.Status == StatusCodes.Status429TooManyRequests);
            case ServingException serving:
                var (status, code) = ApiErrorCodes.Of(serving.Error);
                return (status, code, ClientPaths.Redact(serving.Message, options.ConfigFolder), serving.Field, serving.Transient);
            case BadHttpRequestException bad:
                return bad.StatusCode switch
                {
                    StatusCodes.Status413PayloadTooLarge => (413, ApiErrorCodes.PayloadTooLarge, "request body is too large", null, false),
                    _ => (bad.StatusCode is >= 400 and < 500 ? bad.StatusCode : 400, ApiErrorCodes.BadRequest, "malformed request: " + bad.Message, null, false),
                };
            case OperationCanceledException:
                return (503, ApiErrorCodes.Unavailable, "the request was cancelled (the host is shutting down)", null, true);
            default:
                return (500, ApiErrorCodes.InternalError, "internal error; see the host's log", null, false);
        }
    }
}
