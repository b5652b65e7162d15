using BertHost.Abstractions.Heads;
using System.Diagnostics;
using BertHost.Api.OpenApi;
using BertHost.Core.Config;
using BertHost.Core.IO;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
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
        ("POST", "/v1/embeddings"),
        ("POST", "/embed"),
        ("POST", "/rerank"),
        ("POST", "/tokenize"),
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        ("GET", "/v2"),
        ("GET", "/v2/models/{name}"),
        ("GET", "/v2/models/{name}/ready"),
        ("POST", "/v2/models/{name}/infer"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    ];

    /// <summary>
    /// A handler as a delegate, not a <see cref="RequestDelegate"/>: minimal APIs then record its method, which the
    /// OpenAPI generator needs to list the route (the handlers read and write their JSON themselves either way).
    /// </summary>
    private static Delegate Handler(Func<HttpContext, Task> handler) => handler;

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
        builder.Services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<ApiKeyOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, o => o.Auth = options.Auth);
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
        builder.Services.AddHealthChecks().AddHostHealth();
        builder.Services.AddHostOpenApi();
        builder.Services.AddHostTelemetry(options.Telemetry);
        builder.Services.AddHostedService(_ => new EngineService(engine));
        if (jobs is not null) builder.Services.AddHostedService(_ => new JobRunnerService(jobs));

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

        // The host's own routes.
        var read = OpenApiSetup.AuthStatuses.Append(500);
        var predict = OpenApiSetup.PredictStatuses;
        app.MapGet("/v1/heads", Handler(endpoints.GetHeadsAsync)).RequireAuthorization(Scopes.Predict)
            .Describe("listHeads", "Every configured head, in configuration order, with its state.", null, typeof(HeadList), typeof(Error), read);
        app.MapGet("/v1/heads/{name}", Handler(endpoints.GetHeadAsync)).RequireAuthorization(Scopes.Predict)
            .Describe("getHead", "One head, with its kind-specific details.", null, typeof(HeadDetail), typeof(Error), read.Append(404));
        app.MapPost("/v1/heads/{name}/predict", Handler(endpoints.PredictOneAsync)).RequireAuthorization(Scopes.Predict)
            .Describe("predict", "Runs the inputs through one head; one output per input, in input order.", typeof(PredictRequest), typeof(PredictResponse), typeof(Error), predict);
        app.MapPost("/v1/predict", Handler(endpoints.PredictManyAsync)).RequireAuthorization(Scopes.Predict)
            .Describe("predictMany", "Runs the inputs through several heads with one body pass per input; per input, an object keyed by head name.",
                typeof(PredictManyRequest), typeof(PredictManyResponse), typeof(Error), predict);
        app.MapGet("/v1/body", Handler(endpoints.BodyAsync)).RequireAuthorization(Scopes.Predict)
            .Describe("describeBody", "Facts about the shared body (model folder, fingerprint, device, dtype, sizes, fast paths).", null, typeof(BodyFacts), typeof(Error), read);
        var jobEndpoints = new JobEndpoints(jobs, options, loggers.CreateLogger("BertHost.Api.Jobs"));
        var job = read.Concat([404, 503]);
        app.MapPost("/v1/jobs", Handler(jobEndpoints.SubmitAsync)).RequireAuthorization(Scopes.Train)
            .Describe("submitJob", "Queues a training or pre-training job that runs while the host serves; data inline, uploaded (multipart: the JSON in part 'job', files in parts named after their fields) or named relative to jobs.data_roots.",
                typeof(JobRequest), typeof(Job), typeof(Error), job.Concat([400, 413, 415, 422]), StatusCodes.Status202Accepted)
            .WithMetadata(new OpenApiSetup.RequestSchema(typeof(JobUpload), "multipart/form-data"));
        app.MapGet("/v1/jobs", Handler(jobEndpoints.ListAsync)).RequireAuthorization(Scopes.Train)
            .Describe("listJobs", "Every job (history included), newest first; ?state= filters.", null, typeof(JobList), typeof(Error), job.Append(400));
        app.MapGet("/v1/jobs/{id}", Handler(jobEndpoints.GetAsync)).RequireAuthorization(Scopes.Train)
            .Describe("getJob", "One job: state, progress, per-epoch results, error.", null, typeof(Job), typeof(Error), job);
        app.MapDelete("/v1/jobs/{id}", Handler(jobEndpoints.CancelAsync)).RequireAuthorization(Scopes.Train)
            .Describe("cancelJob", "Cancels a job: 200 when it was queued, 202 when running (it stops at its next batch); 409 when finished.", null, typeof(Job), typeof(Error), job.Append(409));
        app.MapPost("/v1/jobs/{id}/promote", Handler(jobEndpoints.PromoteAsync)).RequireAuthorization(Scopes.Admin)
            .Describe("promoteJob", "Serves a succeeded job's output (its head, or its body with the heads it trained).", null, typeof(Job), typeof(Error), job.Concat([400, 409, 415]));

        // The protocols other clients speak, over the same engine (same batching, limits and scopes), each answering
        // errors in its own shape.
        var openAi = new Protocols.OpenAiEndpoints(engine, options);
        app.MapPost("/v1/embeddings", Handler(openAi.EmbeddingsAsync)).RequireAuthorization(Scopes.Predict).WithMetadata(new ErrorDialectMetadata(ErrorDialect.OpenAi))
            .Describe("createEmbeddings", "OpenAI embeddings: model = an embedding head.", typeof(EmbeddingsRequest), typeof(EmbeddingsResponse), typeof(OpenAiError), predict);
        var tei = new Protocols.TeiEndpoints(engine, options);
        var teiErrors = new ErrorDialectMetadata(ErrorDialect.Tei);
        app.MapPost("/embed", Handler(tei.EmbedAsync)).RequireAuthorization(Scopes.Predict).WithMetadata(teiErrors)
            .Describe("embed", "text-embeddings-inference: one vector per input from an embedding head.", typeof(EmbedRequest), typeof(float[][]), typeof(TeiError), predict);
        app.MapPost("/rerank", Handler(tei.RerankAsync)).RequireAuthorization(Scopes.Predict).WithMetadata(teiErrors)
            .Describe("rerank", "text-embeddings-inference: the texts ranked by a cross-encoder (a text-classification head on (query, text) pairs), best first.",
                typeof(RerankRequest), typeof(Rank[]), typeof(TeiError), predict);
        app.MapPost("/tokenize", Handler(tei.TokenizeAsync)).RequireAuthorization(Scopes.Predict).WithMetadata(teiErrors)
            .Describe("tokenize", "text-embeddings-inference: the served body's tokens of each input, with offsets.", typeof(TokenizeRequest), typeof(SimpleToken[][]), typeof(TeiError),
                read.Concat([400, 413, 415]));
        var health = app.Services.GetRequiredService<HealthCheckService>();
        var kserve = new Protocols.KServeEndpoints(engine, options,
            async token => (await HostHealth.CheckAsync(health, HostHealth.Ready, token)).Status == HealthStatus.Healthy);
        var kserveErrors = new ErrorDialectMetadata(ErrorDialect.KServe);
        app.MapGet("/v2/health/live", Handler(kserve.LiveAsync)).AllowAnonymous().WithMetadata(kserveErrors)
            .Describe("serverLive", "Open Inference Protocol: the server answers.", null, typeof(ServerLive), typeof(KServeError), []);
        app.MapGet("/v2/health/ready", Handler(kserve.ReadyAsync)).AllowAnonymous().WithMetadata(kserveErrors)
            .Describe("serverReady", "Open Inference Protocol: ready as /readyz (503 while not).", null, typeof(ServerReady), typeof(KServeError), [])
            .WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status503ServiceUnavailable, typeof(ServerReady), ["application/json"]));
        app.MapGet("/v2", Handler(kserve.ServerMetadataAsync)).RequireAuthorization(Scopes.Predict).WithMetadata(kserveErrors)
            .Describe("serverMetadata", "Open Inference Protocol: the server's name, version and extensions.", null, typeof(ServerMetadata), typeof(KServeError), read);
        app.MapGet("/v2/models/{name}", Handler(kserve.ModelMetadataAsync)).RequireAuthorization(Scopes.Predict).WithMetadata(kserveErrors)
            .Describe("modelMetadata", "Open Inference Protocol: a head as a model, with the tensors it reads and answers.", null, typeof(ModelMetadata), typeof(KServeError), read.Append(404));
        app.MapGet("/v2/models/{name}/ready", Handler(kserve.ModelReadyAsync)).RequireAuthorization(Scopes.Predict).WithMetadata(kserveErrors)
            .Describe("modelReady", "Open Inference Protocol: whether the head serves (503 while not).", null, typeof(ModelReady), typeof(KServeError), read.Concat([404, 503]));
        app.MapPost("/v2/models/{name}/infer", Handler(kserve.InferAsync)).RequireAuthorization(Scopes.Predict).WithMetadata(kserveErrors)
            .Describe("modelInfer", "Open Inference Protocol: BYTES inputs named after the head's input fields, typed outputs per head kind.",
                typeof(InferenceRequest), typeof(InferenceResponse), typeof(KServeError), predict);

        app.MapGet("/healthz", Handler(endpoints.HealthAsync)).AllowAnonymous()
            .Describe("live", "200 while the process serves.", null, typeof(Liveness), typeof(Error), []);
        app.MapGet("/readyz", Handler(endpoints.ReadyAsync)).AllowAnonymous()
            .Describe("ready", "200 when ready; 503 while a required head failed to load or the host is stopping.", null, typeof(Readiness), typeof(Error), [])
            .WithMetadata(new ProducesResponseTypeMetadata(StatusCodes.Status503ServiceUnavailable, typeof(Readiness), ["application/json"]));
        app.MapGet("/metrics", Handler(endpoints.MetricsAsync)).RequireAuthorization(Scopes.Predict)
            .Describe("metrics", "Prometheus text exposition (version 0.0.4) of the host's metrics.", null, typeof(string), typeof(Error), read, contentType: "text/plain");
        app.MapHostOpenApi();
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
            else if (PluginBug(e) is { } bug)
                logger.LogError(bug, "{Method} {Path} (key {Key}): {Status} {Code}: a head plugin threw {Type}: {Message}",
                    context.Request.Method, context.Request.Path, key, status, code, bug.GetType().FullName, bug.Message);
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

    /// <summary>
    /// The unexpected exception a head plugin threw (a bug in it, not a refused input or configuration), which the
    /// engine wraps in a <see cref="ServingException"/>: logged as an error with its stack trace, since the client only
    /// gets its message.
    /// </summary>
    internal static Exception? PluginBug(Exception e) =>
        e is ServingException { InnerException: { } inner }
        && inner is not (ServingException or HeadInputException or HeadConfigurationException or OperationCanceledException)
            ? inner
            : null;

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
