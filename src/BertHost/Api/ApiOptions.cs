using BertHost.Core.Config;

namespace BertHost.Api;

/// <summary>What the HTTP API needs from the deployment's <c>host:</c> section.</summary>
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

    public static ApiOptions FromHost(HostSection host)
    {
        ArgumentNullException.ThrowIfNull(host);
        return new ApiOptions
        {
            Urls = host.Urls,
            MaxRequestBytes = host.MaxRequestBytes,
            MaxInputsPerRequest = host.MaxInputsPerRequest,
            ShutdownTimeout = TimeSpan.FromSeconds(host.ShutdownTimeoutSeconds),
        };
    }

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(Urls)) throw new ArgumentException("Urls must name at least one address", nameof(Urls));
        if (MaxRequestBytes < 1) throw new ArgumentOutOfRangeException(nameof(MaxRequestBytes), MaxRequestBytes, "must be positive");
        if (MaxInputsPerRequest < 1) throw new ArgumentOutOfRangeException(nameof(MaxInputsPerRequest), MaxInputsPerRequest, "must be positive");
        if (ShutdownTimeout < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(ShutdownTimeout), ShutdownTimeout, "must not be negative");
    }
}
