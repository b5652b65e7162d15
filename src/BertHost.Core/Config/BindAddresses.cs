using System.Net;

namespace BertHost.Core.Config;

/// <summary>Which listen addresses only this machine can reach, and whether a deployment may bind the others.</summary>
public static class BindAddresses
{
    /// <summary>The host part of each <c>;</c>-separated URL (<c>*</c> and <c>+</c> for Kestrel's wildcards; IPv6 without brackets).</summary>
    public static IReadOnlyList<string> Hosts(string urls) =>
        urls.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(HostOf).ToList();

    private static string HostOf(string url)
    {
        var rest = url[(url.IndexOf("://", StringComparison.Ordinal) is var i and >= 0 ? i + 3 : 0)..];
        var end = rest.IndexOf('/');
        if (end >= 0) rest = rest[..end];
        if (rest.StartsWith('['))
        {
            var close = rest.IndexOf(']');
            return close > 0 ? rest[1..close] : rest;
        }
        var colon = rest.LastIndexOf(':');
        return colon >= 0 ? rest[..colon] : rest;
    }

    /// <summary>localhost, 127.0.0.0/8 and ::1.</summary>
    public static bool IsLoopback(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip);

    public static bool LoopbackOnly(string urls) => Hosts(urls).All(IsLoopback);

    /// <summary>
    /// Why <paramref name="urls"/> may not be bound with <paramref name="auth"/>: a non-loopback address needs API keys,
    /// or <c>auth.allow_anonymous: true</c> said explicitly; null when it may.
    /// </summary>
    public static string? Problem(string urls, AuthSection? auth)
    {
        var open = Hosts(urls).Where(h => !IsLoopback(h)).ToList();
        if (open.Count == 0 || auth is { Keys.Count: > 0 } || auth is { AllowAnonymous: true }) return null;
        var where = string.Join(", ", open.Select(h => h is "*" or "+" or "0.0.0.0" or "::" ? $"{h} (every interface)" : h));
        return auth is null
            ? $"binds {where}, which other machines can reach, but the deployment has no auth section: add auth.keys, or set auth.allow_anonymous: true to serve anyone who reaches the port"
            : $"binds {where}, which other machines can reach, but auth has no keys: add auth.keys, or set auth.allow_anonymous: true to serve anyone who reaches the port";
    }
}
