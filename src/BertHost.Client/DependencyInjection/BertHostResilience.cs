using System.Net;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.Timeout;

namespace BertHost.Client.DependencyInjection;

/// <summary>
/// When a request is tried again: only requests the client marked as repeatable (reads, predictions, embeddings — they
/// change nothing on the host), and only after answers that clear by waiting — 429 (queue full), 503 with
/// <c>Retry-After</c> (the host is stopping) — or a network error or attempt timeout. A 503 without <c>Retry-After</c>
/// (a head that failed) and every other 4xx/5xx are final; job submissions, cancellations and promotions are never
/// repeated, so a lost answer cannot queue a job twice.
/// </summary>
public static class BertHostResilience
{
    /// <summary>Set by <see cref="BertHostClient"/> on each request: whether repeating it is harmless.</summary>
    public static readonly HttpRequestOptionsKey<bool> Repeatable = new("BertHost.Repeatable");

    /// <summary>Whether <paramref name="request"/> may be sent again: as marked, else only GET and HEAD.</summary>
    public static bool IsRepeatable(HttpRequestMessage request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request.Options.TryGetValue(Repeatable, out var repeatable)
            ? repeatable
            : request.Method == HttpMethod.Get || request.Method == HttpMethod.Head;
    }

    /// <summary>Whether the outcome is a condition that clears by waiting (regardless of the request).</summary>
    public static bool IsTransient(Outcome<HttpResponseMessage> outcome) => outcome switch
    {
        { Result: { StatusCode: HttpStatusCode.TooManyRequests } } => true,
        { Result: { StatusCode: HttpStatusCode.ServiceUnavailable } response } => response.Headers.RetryAfter is not null,
        { Result: not null } => false,
        { Exception: HttpRequestException or TimeoutRejectedException } => true,
        _ => false,
    };

    /// <summary>Applies the client's options to the standard resilience pipeline (retry, timeouts, circuit breaker).</summary>
    public static void Configure(HttpStandardResilienceOptions resilience, BertHostClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(resilience);
        ArgumentNullException.ThrowIfNull(options);
        resilience.TotalRequestTimeout.Timeout = options.Timeout;
        resilience.AttemptTimeout.Timeout = options.AttemptTimeout;

        var retries = options.MaxRetries;
        resilience.Retry.MaxRetryAttempts = Math.Max(1, retries);   // Polly wants at least 1; 0 is "never handle" below
        resilience.Retry.Delay = options.RetryDelay;
        resilience.Retry.BackoffType = DelayBackoffType.Exponential;
        resilience.Retry.UseJitter = true;
        resilience.Retry.ShouldRetryAfterHeader = true;
        resilience.Retry.ShouldHandle = args =>
        {
            if (retries == 0) return ValueTask.FromResult(false);
            var request = args.Outcome.Result?.RequestMessage ?? args.Context.GetRequestMessage();
            return ValueTask.FromResult(request is not null && IsRepeatable(request) && IsTransient(args.Outcome));
        };

        // The breaker counts only what the retries count: a storm of 4xx (bad input) or a failed head must not cut
        // the client off from the heads that work. Its window must be at least twice the attempt timeout.
        resilience.CircuitBreaker.ShouldHandle = args => ValueTask.FromResult(IsTransient(args.Outcome));
        var window = TimeSpan.FromTicks(options.AttemptTimeout.Ticks * 2);
        if (resilience.CircuitBreaker.SamplingDuration < window) resilience.CircuitBreaker.SamplingDuration = window;
    }
}
