using Microsoft.AspNetCore.Http;

namespace BertHost.Api;

/// <summary>
/// Whose error shape a route answers with: the host's own <c>{"error": {"code", "message", "field"}}</c>, OpenAI's
/// <c>{"error": {"message", "type", "param", "code"}}</c>, text-embeddings-inference's <c>{"error", "error_type"}</c> or
/// the Open Inference Protocol's <c>{"error"}</c>. Routes carry it as endpoint metadata; a request that matched no
/// route is answered in the dialect of its path's family, so a KServe client gets KServe's shape even for a typo.
/// </summary>
public enum ErrorDialect
{
    Native,
    OpenAi,
    Tei,
    KServe,
}

/// <summary>Endpoint metadata: the route's <see cref="ErrorDialect"/>.</summary>
public sealed record ErrorDialectMetadata(ErrorDialect Dialect);

internal static class ErrorDialects
{
    public static ErrorDialect Of(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<ErrorDialectMetadata>() is { } declared) return declared.Dialect;
        var path = context.Request.Path;
        if (path.StartsWithSegments("/v2")) return ErrorDialect.KServe;
        return ErrorDialect.Native;
    }

    /// <summary>
    /// The status a dialect answers with: OpenAI and the Open Inference Protocol know no 422 and answer a request the
    /// model refuses with 400 (their clients map statuses, not our codes); every other status stays.
    /// </summary>
    public static int Status(ErrorDialect dialect, int status) =>
        dialect is ErrorDialect.OpenAi or ErrorDialect.KServe && status == StatusCodes.Status422UnprocessableEntity ? StatusCodes.Status400BadRequest : status;

    /// <summary>OpenAI's <c>error.type</c> for a status.</summary>
    public static string OpenAiType(int status) => status switch
    {
        StatusCodes.Status401Unauthorized => "authentication_error",
        StatusCodes.Status403Forbidden => "permission_error",
        StatusCodes.Status404NotFound => "not_found_error",
        StatusCodes.Status429TooManyRequests => "rate_limit_error",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };

    /// <summary>text-embeddings-inference's <c>error_type</c> for a status (its own values: validation, overloaded, backend, unhealthy).</summary>
    public static string TeiType(int status) => status switch
    {
        StatusCodes.Status429TooManyRequests => "overloaded",
        StatusCodes.Status503ServiceUnavailable => "unhealthy",
        >= 500 => "backend",
        _ => "validation",
    };
}
