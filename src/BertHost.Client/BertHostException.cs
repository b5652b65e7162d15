using System.Net;

namespace BertHost.Client;

/// <summary>Whose JSON error shape an answer came in (each route family answers in its protocol's).</summary>
public enum ErrorShape
{
    /// <summary>The host's own routes: <c>{"error": {"code", "message", "field"}}</c>.</summary>
    Native,

    /// <summary>OpenAI's <c>POST /v1/embeddings</c>: <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
    OpenAi,

    /// <summary>text-embeddings-inference's <c>/embed</c>, <c>/rerank</c>, <c>/tokenize</c>: <c>{"error", "error_type"}</c>.</summary>
    Tei,

    /// <summary>The Open Inference Protocol's <c>/v2</c> routes: <c>{"error"}</c>.</summary>
    KServe,
}

/// <summary>
/// The host answered a call with an error status. Carries everything the answer said: the status, the API's error
/// code, the offending field, the message, the error type of the protocols that have one, <c>Retry-After</c>, and the
/// body itself.
/// </summary>
public sealed class BertHostException : Exception
{
    public BertHostException(HttpMethod method, string path, HttpStatusCode status, ErrorShape shape, string? code, string? field,
        string detail, string? errorType, TimeSpan? retryAfter, string? responseBody, Exception? inner = null)
        : base(Describe(method, path, status, code, field, detail), inner)
    {
        Method = method;
        Path = path;
        StatusCode = status;
        Shape = shape;
        ErrorCode = code;
        Field = field;
        Detail = detail;
        ErrorType = errorType;
        RetryAfter = retryAfter;
        ResponseBody = responseBody;
    }

    /// <summary>The request's method.</summary>
    public HttpMethod Method { get; }

    /// <summary>The request's path (relative to the base address, query included).</summary>
    public string Path { get; }

    public HttpStatusCode StatusCode { get; }

    /// <summary><see cref="StatusCode"/> as a number.</summary>
    public int Status => (int)StatusCode;

    /// <summary>The error shape the answer was read as.</summary>
    public ErrorShape Shape { get; }

    /// <summary>
    /// The host's error code (<c>bad_request</c>, <c>invalid_input</c>, <c>unauthorized</c>, <c>unknown_head</c>...) on
    /// the host's own routes and OpenAI's; null where the shape has none (TEI, KServe).
    /// </summary>
    public string? ErrorCode { get; }

    /// <summary>
    /// The JSON path of the offending field (<c>inputs[1].text</c>, <c>parameters.top_k</c>, OpenAI's <c>param</c>);
    /// on TEI and KServe routes read from the <c>field: message</c> form this host writes there. Null when none.
    /// </summary>
    public string? Field { get; }

    /// <summary>The API's message, as sent.</summary>
    public string Detail { get; }

    /// <summary>OpenAI's <c>type</c> (e.g. <c>invalid_request_error</c>) or TEI's <c>error_type</c> (e.g. <c>validation</c>).</summary>
    public string? ErrorType { get; }

    /// <summary>The answer's <c>Retry-After</c>: sent only with conditions that clear by waiting (429, a host stopping).</summary>
    public TimeSpan? RetryAfter { get; }

    /// <summary>The body of the answer (the first 64 KiB), for anything the properties do not hold.</summary>
    public string? ResponseBody { get; }

    private static string Describe(HttpMethod method, string path, HttpStatusCode status, string? code, string? field, string detail)
    {
        var what = code is null ? $"{(int)status}" : $"{(int)status} {code}";
        var where = field is null || detail.StartsWith(field, StringComparison.Ordinal) ? "" : $" (field {field})";
        return $"{method} /{path}: {what}: {detail}{where}";
    }
}
