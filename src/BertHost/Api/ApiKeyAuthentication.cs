using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using BertHost.Core.Config;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace BertHost.Api;

/// <summary>The deployment's keys as the handler uses them.</summary>
public sealed class ApiKeyOptions : AuthenticationSchemeOptions
{
    /// <summary>Null = no <c>auth:</c> section: every request gets every scope (the host binds loopback only).</summary>
    public AuthSection? Auth { get; set; }
}

/// <summary>
/// API-key authentication (<c>Authorization: Bearer KEY</c> or <c>X-Api-Key: KEY</c>): the key's SHA-256 is compared,
/// in constant time, with the hashes of <c>auth.keys</c>; the principal is named after the key's id and carries one
/// <c>scope</c> claim per scope (<c>admin</c> implies <c>train</c> and <c>predict</c>). The authorization policies
/// named after the scopes decide; a missing or wrong key is a JSON 401, a key without the scope a JSON 403.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(IOptionsMonitor<ApiKeyOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<ApiKeyOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string ScopeClaim = "scope";
    public const string ApiKeyHeader = "X-Api-Key";
    private const string InvalidKeyItem = "berthost.invalid_key";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var auth = Options.Auth;
        if (auth is null) return Task.FromResult(Success(null, Scopes.All));
        var key = PresentedKey(Request);
        if (key is null)
        {
            return Task.FromResult(auth.AllowAnonymous ? Success(null, auth.AnonymousScopes) : AuthenticateResult.NoResult());
        }
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(key));
        ApiKeySection? match = null;
        foreach (var candidate in auth.Keys)
        {
            // Every key is compared, in constant time: the time taken says nothing about which one is near.
            if (CryptographicOperations.FixedTimeEquals(hash, Convert.FromHexString(candidate.Sha256))) match = candidate;
        }
        if (match is null)
        {
            Context.Items[InvalidKeyItem] = true;
            return Task.FromResult(AuthenticateResult.Fail("the API key is not valid"));
        }
        return Task.FromResult(Success(match.Id, match.Scopes));
    }

    private AuthenticateResult Success(string? keyId, IEnumerable<string> scopes)
    {
        var granted = scopes.Contains(Scopes.Admin) ? Scopes.All : scopes.Distinct();
        var claims = granted.Select(s => new Claim(ScopeClaim, s)).ToList();
        if (keyId is not null) claims.Add(new Claim(ClaimTypes.Name, keyId));
        var identity = new ClaimsIdentity(claims, keyId is null ? "anonymous" : SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    /// <summary>The key of <c>Authorization: Bearer KEY</c> or <c>X-Api-Key</c>; null when neither is sent.</summary>
    private static string? PresentedKey(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return header["Bearer ".Length..].Trim();
        var apiKey = request.Headers[ApiKeyHeader].ToString();
        return apiKey.Length > 0 ? apiKey.Trim() : null;
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer";
        var invalid = Context.Items.ContainsKey(InvalidKeyItem);
        return ApiResponses.WriteErrorAsync(Context, StatusCodes.Status401Unauthorized, ApiErrorCodes.Unauthorized,
            invalid ? "the API key is not valid" : $"this route needs an API key: send Authorization: Bearer KEY or {ApiKeyHeader}: KEY", null);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        var needed = Context.GetEndpoint()?.Metadata.GetOrderedMetadata<IAuthorizeData>().Select(a => a.Policy).LastOrDefault(p => p is not null) ?? Scopes.Admin;
        var who = Context.User.Identity?.Name is { } id ? $"the key '{id}'" : "a request without a key";
        return ApiResponses.WriteErrorAsync(Context, StatusCodes.Status403Forbidden, ApiErrorCodes.Forbidden,
            $"{who} lacks the {needed} scope this route needs", null);
    }

    /// <summary>The key id of the request's principal (null: no key, or no authentication configured).</summary>
    public static string? KeyOf(HttpContext context) => context.User.Identity?.Name;

    /// <summary>Whether the request's principal holds <paramref name="scope"/>.</summary>
    public static bool Has(HttpContext context, string scope) => context.User.HasClaim(ScopeClaim, scope);
}
