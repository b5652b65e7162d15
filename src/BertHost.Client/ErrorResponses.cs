using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace BertHost.Client;

/// <summary>Reads an error answer in its route family's shape into a <see cref="BertHostException"/>.</summary>
internal static partial class ErrorResponses
{
    /// <summary>How much of an error body is kept (the host's are a few hundred bytes; a proxy's page may be more).</summary>
    internal const int MaxBodyChars = 64 * 1024;

    // TEI and KServe errors have no field property; this host writes "inputs[0].text: message" there instead.
    [GeneratedRegex(@"^(?<field>[A-Za-z_][A-Za-z0-9_]*(?:\[[0-9]+\])*(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[[0-9]+\])*)*): ")]
    private static partial Regex FieldPrefix();

    public static async Task<BertHostException> ReadAsync(HttpResponseMessage response, HttpMethod method, string path, ErrorShape shape,
        CancellationToken cancellationToken)
    {
        var body = await ReadBoundedAsync(response.Content, cancellationToken).ConfigureAwait(false);
        var retryAfter = RetryAfter(response);
        string? code = null, field = null, type = null, message = null;
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out var error))
            {
                if (error.ValueKind == JsonValueKind.Object)
                {
                    // The host's own shape and OpenAI's: an object (OpenAI names the field param and adds a type).
                    message = Text(error, "message");
                    code = Text(error, "code");
                    field = Text(error, "field") ?? Text(error, "param");
                    type = Text(error, "type");
                }
                else if (error.ValueKind == JsonValueKind.String)
                {
                    // TEI's and the Open Inference Protocol's: a string (TEI adds error_type).
                    message = error.GetString();
                    type = Text(root, "error_type");
                    if (message is not null && FieldPrefix().Match(message) is { Success: true } m) field = m.Groups["field"].Value;
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON (a proxy's page, a truncated body): the body itself is the message.
        }
        message ??= body.Length > 0 ? body : response.ReasonPhrase ?? "no message";
        return new BertHostException(method, path, response.StatusCode, shape, code, field, message, type, retryAfter, body);
    }

    private static string? Text(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var header = response.Headers.RetryAfter;
        if (header?.Delta is { } delta) return delta;
        if (header?.Date is { } date) return date - DateTimeOffset.UtcNow is var wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
        return null;
    }

    private static async Task<string> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var reader = new StreamReader(stream);
        var buffer = new char[MaxBodyChars];
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await reader.ReadAsync(buffer.AsMemory(read), cancellationToken).ConfigureAwait(false);
            if (n == 0) break;
            read += n;
        }
        return new string(buffer, 0, read);
    }

    /// <summary>A 2xx answer whose body is not what the route documents (a proxy, a version mismatch).</summary>
    public static BertHostException Unexpected(HttpResponseMessage response, HttpMethod method, string path, ErrorShape shape, Exception inner) =>
        new(method, path, response.StatusCode, shape, null, null,
            $"the answer is not the JSON this route documents: {inner.Message}", null, null, null, inner);
}
