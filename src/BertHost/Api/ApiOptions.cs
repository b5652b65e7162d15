using BertHost.Core.Config;

namespace BertHost.Api;

/// <summary>What the HTTP API needs from the deployment: the <c>host:</c> section, <c>auth:</c> and the jobs' upload limit.</summary>
public sealed record ApiOptions
{
    /// <summary>Addresses to listen on, separated by ';'. Port 0 picks a free port (read it from the server's addresses).</summary>
    public string Urls { get; init; } = "http://127.0.0.1:5080";

    /// <summary>Largest request body accepted, in bytes (413 above it, refused before the body is read).</summary>
    public long MaxRequestBytes { get; init; } = 1 << 20;

    /// <summary>Most inputs in one request (413 above it).</summary>
    public int MaxInputsPerRequest { get; init; } = 256;

    /// <summary>How long stopping waits for in-flight requests to finish.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a request may run before it is cancelled and answered 504.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Largest response body written (413 instead of a larger one).</summary>
    public long MaxResponseBytes { get; init; } = 16L << 20;

    /// <summary>Largest <c>POST /v1/jobs</c> body, uploaded data included.</summary>
    public long MaxUploadBytes { get; init; } = 64L << 20;

    /// <summary>API keys and scopes; null = no authentication (every request may do everything: loopback-only hosts).</summary>
    public AuthSection? Auth { get; init; }

    /// <summary>Host header values answered; null = the bound names plus localhost, 127.0.0.1 and [::1].</summary>
    public IReadOnlyList<string>? AllowedHosts { get; init; }

    /// <summary>Browser origins allowed to call the API (CORS); empty = CORS off.</summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];

    /// <summary>The server certificate and client-certificate policy of https:// addresses.</summary>
    public HttpsSection? Https { get; init; }

    /// <summary>The heads TEI's <c>/embed</c> and <c>/rerank</c> serve when a request names none.</summary>
    public ProtocolsSection Protocols { get; init; } = new();

    /// <summary>Where traces and metrics are exported (OTLP); none by default.</summary>
    public TelemetrySection Telemetry { get; init; } = new();

    /// <summary>The deployment's folder: paths inside it are shown relative to it, others by their last component only.</summary>
    public string? ConfigFolder { get; init; }

    public static ApiOptions FromHost(HostSection host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return new ApiOptions
        {
            Urls = host.Urls,
            MaxRequestBytes = host.MaxRequestBytes,
            MaxInputsPerRequest = host.MaxInputsPerRequest,
            ShutdownTimeout = TimeSpan.FromSeconds(host.ShutdownTimeoutSeconds),
            RequestTimeout = TimeSpan.FromSeconds(host.RequestTimeoutSeconds),
            MaxResponseBytes = host.MaxResponseBytes,
            AllowedHosts = host.AllowedHosts,
            CorsOrigins = host.CorsOrigins,
            Https = host.Https,
        };
    }

    /// <summary>Everything the API takes from a deployment.</summary>
    public static ApiOptions FromConfig(HostConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return FromHost(config.Host) with
        {
            Auth = config.Auth,
            MaxUploadBytes = config.Jobs.MaxUploadBytes,
            Protocols = config.Protocols,
            Telemetry = config.Telemetry,
            ConfigFolder = Path.GetDirectoryName(config.SourcePath),
        };
    }

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(Urls)) throw new ArgumentException("Urls must name at least one address", nameof(Urls));
        if (MaxRequestBytes < 1) throw new ArgumentOutOfRangeException(nameof(MaxRequestBytes), MaxRequestBytes, "must be positive");
        if (MaxInputsPerRequest < 1) throw new ArgumentOutOfRangeException(nameof(MaxInputsPerRequest), MaxInputsPerRequest, "must be positive");
        if (ShutdownTimeout < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(ShutdownTimeout), ShutdownTimeout, "must not be negative");
        if (RequestTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RequestTimeout), RequestTimeout, "must be positive");
        if (BindAddresses.Problem(Urls, Auth) is { } problem) throw new BindRefusedException(problem);
    }
}

/// <summary>The host would listen where other machines reach it without asking for keys.</summary>
public sealed class BindRefusedException(string message) : InvalidOperationException(message);
