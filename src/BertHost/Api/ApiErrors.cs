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

    /// <summary>Seconds a client should wait after 429 (queue full) or 503 before retrying.</summary>
    public const int RetryAfterSeconds = 1;


    /// <summary>Writes <c>{"error": {"code", "message", "field"}}</c> with <paramref name="status"/>.</summary>
    public static Task WriteErrorAsync(HttpContext context, int status, string code, string message, string? field)
    {
        context.Response.StatusCode = status;
        if (status is StatusCodes.Status429TooManyRequests or StatusCodes.Status503ServiceUnavailable)
            context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return WriteJsonAsync(context, status, w =>
        {
            w.WriteStartObject();
            w.WriteStartObject("error");
            w.WriteString("code", code);
            w.WriteString("message", message);
            if (field is null) w.WriteNull("field");
            else w.WriteString("field", field);
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    /// <summary>Writes a JSON body produced by <paramref name="write"/> (buffered, so Content-Length is set).</summary>
    public static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, JsonOutput.Writer)) write(writer);
        context.Response.StatusCode = status;
        context.Response.ContentType = JsonContentType;
        context.Response.ContentLength = buffer.WrittenCount;
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
    }
}
