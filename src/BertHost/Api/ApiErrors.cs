using System.Text.Json;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Http;

namespace BertHost.Api;

/// <summary>The <c>error.code</c> strings the API answers with.</summary>
public static class ApiErrorCodes
{
    public const string BadRequest = "bad_request";
    public const string NotFound = "not_found";
    public const string UnknownHead = "unknown_head";
    public const string MethodNotAllowed = "method_not_allowed";
    public const string PayloadTooLarge = "payload_too_large";
    public const string UnsupportedMediaType = "unsupported_media_type";
    public const string InvalidInput = "invalid_input";
    public const string QueueFull = "queue_full";
    public const string Unavailable = "unavailable";
    public const string InternalError = "internal_error";
    public const string StaleHead = "stale_head";
    public const string Conflict = "conflict";
    public const string Unauthorized = "unauthorized";
    public const string Forbidden = "forbidden";
    public const string JobsDisabled = "jobs_disabled";
    public const string Timeout = "timeout";
    public const string HostNotAllowed = "host_not_allowed";

    /// <summary>The HTTP status and code of a <see cref="ServingError"/>.</summary>
    public static (int Status, string Code) Of(ServingError error) => error switch
    {
        ServingError.BadRequest => (StatusCodes.Status400BadRequest, BadRequest),
        ServingError.UnknownHead => (StatusCodes.Status404NotFound, UnknownHead),
        ServingError.PayloadTooLarge => (StatusCodes.Status413PayloadTooLarge, PayloadTooLarge),
        ServingError.InvalidInput => (StatusCodes.Status422UnprocessableEntity, InvalidInput),
        ServingError.QueueFull => (StatusCodes.Status429TooManyRequests, QueueFull),
        ServingError.Unavailable => (StatusCodes.Status503ServiceUnavailable, Unavailable),
        ServingError.StaleHead => (StatusCodes.Status409Conflict, StaleHead),
        ServingError.NotFound => (StatusCodes.Status404NotFound, NotFound),
        ServingError.Conflict => (StatusCodes.Status409Conflict, Conflict),
        ServingError.Forbidden => (StatusCodes.Status403Forbidden, Forbidden),
        ServingError.TooMuchWork => (StatusCodes.Status413PayloadTooLarge, PayloadTooLarge),
        _ => (StatusCodes.Status500InternalServerError, InternalError),
    };
}

/// <summary>A failure the API layer itself detects (request shape, size, media type); answered as a JSON error.</summary>
internal sealed class ApiException(int status, string code, string message, string? field = null) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;
    public string? Field { get; } = field;

    public static ApiException BadRequest(string message, string? field = null) =>
        new(StatusCodes.Status400BadRequest, ApiErrorCodes.BadRequest, message, field);
}

internal static class ApiResponses
{
    public const string JsonContentType = "application/json; charset=utf-8";

    /// <summary>Seconds a client should wait after 429 (queue full) or a 503 that clears (the host stopping) before retrying.</summary>
    public const int RetryAfterSeconds = 1;

    /// <summary>
    /// Writes the error in the route's <see cref="ErrorDialect"/> (the host's own: <c>{"error": {"code", "message",
    /// "field"}}</c>) with <paramref name="status"/>. <c>Retry-After</c> goes only
    /// with conditions that clear by waiting (<paramref name="retry"/>; by default 429): a request that cannot succeed
    /// must not invite retries.
    /// </summary>
    public static Task WriteErrorAsync(HttpContext context, int status, string code, string message, string? field, bool? retry = null)
    {
        var dialect = ErrorDialects.Of(context);
        status = ErrorDialects.Status(dialect, status);
        context.Response.StatusCode = status;
        RequestInfo.Of(context).ErrorCode = code;
        if (retry ?? status == StatusCodes.Status429TooManyRequests)
            context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        // Shapes without a field property carry it in the message, unless the message already starts with it.
        var withField = field is null || message.StartsWith(field, StringComparison.Ordinal) ? message : $"{field}: {message}";
        return WriteJsonAsync(context, status, w =>
        {
            w.WriteStartObject();
            switch (dialect)
            {
                case ErrorDialect.OpenAi:
                    w.WriteStartObject("error");
                    w.WriteString("message", message);
                    w.WriteString("type", ErrorDialects.OpenAiType(status));
                    if (field is null) w.WriteNull("param");
                    else w.WriteString("param", field);
                    w.WriteString("code", code);
                    w.WriteEndObject();
                    break;
                case ErrorDialect.Tei:
                    w.WriteString("error", withField);
                    w.WriteString("error_type", ErrorDialects.TeiType(status));
                    break;
                case ErrorDialect.KServe:
                    w.WriteString("error", withField);
                    break;
                default:
                    w.WriteStartObject("error");
                    w.WriteString("code", code);
                    w.WriteString("message", message);
                    if (field is null) w.WriteNull("field");
                    else w.WriteString("field", field);
                    w.WriteEndObject();
                    break;
            }
            w.WriteEndObject();
        });
    }

    /// <summary>
    /// Writes a JSON body produced by <paramref name="write"/> (buffered, so Content-Length is set). A body larger than
    /// <see cref="ApiOptions.MaxResponseBytes"/> is refused while it is being built (413), never sent.
    /// </summary>
    public static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        var limit = (context.RequestServices.GetService(typeof(ApiOptions)) as ApiOptions)?.MaxResponseBytes ?? long.MaxValue;
        var buffer = new BoundedBufferWriter(limit);
        using (var writer = new Utf8JsonWriter(buffer, JsonOutput.Writer)) write(writer);
        context.Response.StatusCode = status;
        context.Response.ContentType = JsonContentType;
        context.Response.ContentLength = buffer.WrittenCount;
        // Not RequestAborted: after a request timeout that token is cancelled, and the 504 must still be written (a client
        // that went away makes the write fail anyway).
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, CancellationToken.None);
    }
}

/// <summary>A growing byte buffer that refuses to grow past a limit (the response size bound).</summary>
internal sealed class BoundedBufferWriter(long limit) : System.Buffers.IBufferWriter<byte>
{
    private readonly System.Buffers.ArrayBufferWriter<byte> _inner = new(256);

    public int WrittenCount => _inner.WrittenCount;
    public ReadOnlyMemory<byte> WrittenMemory => _inner.WrittenMemory;

    public void Advance(int count)
    {
        _inner.Advance(count);
        Check(0);
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Check(sizeHint);
        return _inner.GetMemory(sizeHint);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Check(sizeHint);
        return _inner.GetSpan(sizeHint);
    }

    private void Check(int more)
    {
        if (_inner.WrittenCount + (long)more > limit)
            throw new ServingException(ServingError.TooMuchWork,
                $"the response would be larger than {limit} bytes (host.max_response_bytes); send fewer or shorter inputs, or ask for less (e.g. an aggregation)");
    }
}
