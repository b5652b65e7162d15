using System.Buffers;
using System.Text.Json;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace BertHost.Api;

/// <summary>Reads a JSON request body: media type check (415), size limit without buffering past it (413), parse (400).</summary>
internal static class JsonRequestReader
{
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    /// <summary>The body's root element (a copy that outlives the request; nothing to dispose).</summary>
    public static async Task<JsonElement> ReadAsync(HttpContext context, long maxBytes)
    {
        var request = context.Request;
        CheckMediaType(request.ContentType);
        if (request.ContentLength is long declared && declared > maxBytes)
            throw TooLarge(maxBytes);

        var buffer = new ArrayBufferWriter<byte>((int)Math.Clamp(request.ContentLength ?? 4096, 1, Math.Min(maxBytes + 1, 1 << 20)));
        var body = request.Body;
        while (true)
        {
            int read;
            try
            {
                read = await body.ReadAsync(buffer.GetMemory(8192), context.RequestAborted);
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                throw TooLarge(maxBytes);
            }
            if (read == 0) break;
            buffer.Advance(read);
            if (buffer.WrittenCount > maxBytes) throw TooLarge(maxBytes);
        }
        if (buffer.WrittenCount == 0) throw ApiException.BadRequest("request body is empty; expected a JSON object");

        return Parse(buffer.WrittenMemory, "request body");
    }

    /// <summary>
    /// Parses JSON (400 saying where it is malformed), and refuses strings .NET cannot decode — invalid UTF-8, lone
    /// surrogates — in any value or property name, naming the field (400), before any handler reads them.
    /// </summary>
    public static JsonElement Parse(ReadOnlyMemory<byte> json, string what)
    {
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(json, DocumentOptions);
            root = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw ApiException.BadRequest(DescribeJsonError(e));
        }
        JsonStrings.Check(root, what: $"the {what}");
        return root;
    }

    /// <summary>"malformed JSON at line 2, byte 7: 'x' is an invalid start of a value." (1-based positions).</summary>
    internal static string DescribeJsonError(JsonException e)
    {
        var detail = e.Message;
        var cut = detail.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut >= 0) detail = detail[..cut];
        detail = detail.Trim();
        var where = e.LineNumber is long line
            ? $" at line {line + 1}, byte {(e.BytePositionInLine ?? 0) + 1}"
            : "";
        return $"malformed JSON{where}: {detail}";
    }

    /// <summary>Refuses (415) anything but <c>application/json</c> in UTF-8.</summary>
    public static void CheckMediaType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
            throw UnsupportedMediaType("missing Content-Type; send application/json");
        if (!MediaTypeHeaderValue.TryParse(contentType, out var media) ||
            !media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
            throw UnsupportedMediaType($"unsupported Content-Type '{contentType}'; send application/json");
        // charset="utf-8" is as valid as charset=utf-8 (RFC 9110 allows a quoted parameter value).
        var charset = HeaderUtilities.RemoveQuotes(media.Charset);
        if (charset.HasValue && !charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) && !charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
            throw UnsupportedMediaType($"unsupported charset '{charset}'; send UTF-8 JSON");
    }

    private static ApiException UnsupportedMediaType(string message) =>
        new(StatusCodes.Status415UnsupportedMediaType, ApiErrorCodes.UnsupportedMediaType, message);

    public static ApiException TooLarge(long maxBytes) =>
        new(StatusCodes.Status413PayloadTooLarge, ApiErrorCodes.PayloadTooLarge, $"request body is larger than {maxBytes} bytes");
}
