using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization;
using BertHost.Client.DependencyInjection;
using Microsoft.Extensions.DependencyInjection;
using Polly.Timeout;

namespace BertHost.Client;

/// <summary>
/// A client of a BertHost server: typed calls for the host's own routes (heads, predict, body, jobs, health, metrics,
/// OpenAPI), OpenAI's embeddings, text-embeddings-inference's embed/rerank/tokenize and the Open Inference Protocol
/// (KServe v2). Failures are <see cref="BertHostException"/>s carrying the status and the API's code, field and message.
/// Make it with <c>services.AddBertHostClient(...)</c> (IHttpClientFactory, retries) or <see cref="Create(BertHostClientOptions)"/>;
/// over an <see cref="HttpClient"/> of your own, it adds no retries. Safe to use from several threads.
/// </summary>
public sealed partial class BertHostClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly BertHostClientOptions _options;
    private readonly IDisposable? _owned;

    /// <summary>A client over <paramref name="httpClient"/> (not disposed by this client); its BaseAddress is used when the options name none.</summary>
    public BertHostClient(HttpClient httpClient, BertHostClientOptions options) : this(httpClient, options, null)
    {
    }

    private BertHostClient(HttpClient httpClient, BertHostClientOptions options, IDisposable? owned)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        ArgumentNullException.ThrowIfNull(options);
        _options = new BertHostClientOptions();
        options.CopyTo(_options);
        _options.BaseAddress ??= httpClient.BaseAddress;
        _options.Validate();
        BaseAddress = DirectoryOf(_options.BaseAddress!);
        _http = httpClient;
        _owned = owned;
    }

    /// <summary>
    /// A client with its own <c>IHttpClientFactory</c> and the same resilience pipeline as <c>AddBertHostClient</c>
    /// (for programs without dependency injection). Dispose it when done.
    /// </summary>
    public static BertHostClient Create(BertHostClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var services = new ServiceCollection();
        services.AddBertHostClient(options.CopyTo);
        var provider = services.BuildServiceProvider();
        try
        {
            var http = provider.GetRequiredService<IHttpClientFactory>().CreateClient(BertHostServiceCollectionExtensions.HttpClientName);
            return new BertHostClient(http, options, provider);
        }
        catch
        {
            provider.Dispose();
            throw;
        }
    }

    /// <summary>A client of the host at <paramref name="baseAddress"/> with default options; see <see cref="Create(BertHostClientOptions)"/>.</summary>
    public static BertHostClient Create(Uri baseAddress, string? apiKey = null) =>
        Create(new BertHostClientOptions { BaseAddress = baseAddress, ApiKey = apiKey });

    /// <summary>The host's address (ending in '/'; routes are resolved against it).</summary>
    public Uri BaseAddress { get; }

    /// <summary>How requests and answers are (de)serialised: snake_case names, nulls left out, NaN allowed (a job's loss).</summary>
    internal static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public void Dispose() => _owned?.Dispose();

    /// <summary><paramref name="address"/> with a trailing '/', so relative routes keep its path prefix.</summary>
    internal static Uri DirectoryOf(Uri address) =>
        address.AbsolutePath.EndsWith('/') ? address : new Uri(address.GetLeftPart(UriPartial.Path) + "/" + address.Query);

    /// <summary>A path segment from a name the caller gave (a head, a job id): escaped, so it cannot reach another route.</summary>
    internal static string Segment(string value, string parameter)
    {
        ArgumentException.ThrowIfNullOrEmpty(value, parameter);
        return Uri.EscapeDataString(value);
    }

    /// <summary>A JSON request body, serialised now (Content-Length known, and the same bytes if the request is retried).</summary>
    internal static HttpContent Json(object body)
    {
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, body.GetType(), JsonOptions));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        return content;
    }

    /// <summary>Sends a request and reads a JSON answer as <typeparamref name="T"/>.</summary>
    internal Task<T> SendAsync<T>(HttpMethod method, string path, HttpContent? content, ErrorShape shape, bool repeatable,
        CancellationToken cancellationToken, params HttpStatusCode[] alsoAccepted) =>
        SendAsync(method, path, content, shape, repeatable, async (response, token) =>
        {
            using var stream = await response.Content.ReadAsStreamAsync(token).ConfigureAwait(false);
            return await JsonSerializer.DeserializeAsync<T>(stream, JsonOptions, token).ConfigureAwait(false)
                ?? throw new JsonException("the answer is null");
        }, cancellationToken, alsoAccepted);

    /// <summary>
    /// Sends a request (the API key added, marked as repeatable or not for the retry policy) and reads a successful
    /// answer with <paramref name="read"/>; an error status (unless in <paramref name="alsoAccepted"/>) becomes a
    /// <see cref="BertHostException"/> read in the route family's <paramref name="shape"/>.
    /// </summary>
    internal async Task<T> SendAsync<T>(HttpMethod method, string path, HttpContent? content, ErrorShape shape, bool repeatable,
        Func<HttpResponseMessage, CancellationToken, Task<T>> read, CancellationToken cancellationToken, params HttpStatusCode[] alsoAccepted)
    {
        using var request = new HttpRequestMessage(method, new Uri(BaseAddress, path)) { Content = content };
        request.Options.Set(BertHostResilience.Repeatable, repeatable);
        if (_options.ApiKey is { } key)
        {
            if (_options.ApiKeyHeader == ApiKeyHeader.XApiKey) request.Headers.Add("X-Api-Key", key);
            else request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        // The call's deadline covers the retries and reading the answer (the pipeline's timeouts end with the headers).
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_options.Timeout);
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode && !alsoAccepted.Contains(response.StatusCode))
                throw await ErrorResponses.ReadAsync(response, method, path, shape, deadline.Token).ConfigureAwait(false);
            try
            {
                return await read(response, deadline.Token).ConfigureAwait(false);
            }
            catch (JsonException e)
            {
                throw ErrorResponses.Unexpected(response, method, path, shape, e);
            }
        }
        catch (Exception e) when (e is TimeoutRejectedException
                                  || e is OperationCanceledException && deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"{method} /{path} did not complete in time (attempt timeout {_options.AttemptTimeout}, call timeout {_options.Timeout})", e);
        }
    }
}
