using System.Diagnostics;
using System.Net;
using System.Text;
using BertHost.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace BertHost.Tests.Client;

/// <summary>
/// The retry policy of <c>AddBertHostClient</c>, against a scripted in-test handler in place of the network: repeatable
/// requests are retried after 429, 503 with Retry-After (waiting as it says), network errors and attempt timeouts;
/// nothing else is retried, and job submissions, cancellations and promotions never are.
/// </summary>
public sealed class ClientResilienceTests
{
    private const string HeadsJson = """{"heads": [{"name": "emb", "kind": "embedding", "state": "ready", "labels": []}]}""";
    private const string JobJson = """{"id": "j1", "kind": "train", "state": "queued", "created": "2026-01-01T00:00:00Z"}""";

    /// <summary>Answers each request with the next step of its script (the last step repeats) and records what it was sent.</summary>
    private sealed class ScriptedHandler(params Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>>[] steps) : HttpMessageHandler
    {
        private int _calls;

        public List<(HttpMethod Method, string Path, string? Body)> Requests { get; } = [];

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
            lock (Requests) Requests.Add((request.Method, request.RequestUri!.PathAndQuery, body));
            Entered.TrySetResult();
            var step = steps[Math.Min(Interlocked.Increment(ref _calls) - 1, steps.Length - 1)];
            var response = await step(request, cancellationToken);
            response.RequestMessage = request;
            return response;
        }
    }

    private static Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> Answer(HttpStatusCode status, string json, int? retryAfter = null) =>
        (_, _) =>
        {
            var response = new HttpResponseMessage(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            if (retryAfter is { } seconds) response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(seconds));
            return Task.FromResult(response);
        };

    private static Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> Error(HttpStatusCode status, string code, int? retryAfter = null) =>
        Answer(status, $$$"""{"error": {"code": "{{{code}}}", "message": "scripted {{{code}}}", "field": null}}""", retryAfter);

    private static readonly Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> NetworkError =
        (_, _) => throw new HttpRequestException("connection refused (scripted)");

    private static readonly Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> Hang =
        async (_, token) =>
        {
            await Task.Delay(Timeout.Infinite, token);
            throw new InvalidOperationException("unreachable");
        };

    private static (BertHostClient Client, ServiceProvider Provider) Make(ScriptedHandler handler, Action<BertHostClientOptions>? configure = null)
    {
        var services = new ServiceCollection();
        services.AddBertHostClient(o =>
        {
            o.BaseAddress = new Uri("http://berthost.test/prefix");
            o.RetryDelay = TimeSpan.FromMilliseconds(1);
            configure?.Invoke(o);
        }).ConfigurePrimaryHttpMessageHandler(() => handler);
        var provider = services.BuildServiceProvider();
        return (provider.GetRequiredService<BertHostClient>(), provider);
    }

    [Fact]
    public async Task A_503_with_retry_after_is_retried_after_the_wait_it_names()
    {
        var handler = new ScriptedHandler(Error(HttpStatusCode.ServiceUnavailable, "unavailable", retryAfter: 1), Answer(HttpStatusCode.OK, HeadsJson));
        var (client, provider) = Make(handler);
        using var _ = provider;
        var clock = Stopwatch.StartNew();
        var heads = await client.ListHeadsAsync();
        Assert.Equal("emb", Assert.Single(heads).Name);
        Assert.Equal(2, handler.Requests.Count);
        // The retry delay is 1 ms: only Retry-After makes it wait a second.
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.9), $"retried after {clock.Elapsed}");
        Assert.All(handler.Requests, r => Assert.Equal("/prefix/v1/heads", r.Path));
    }

    [Fact]
    public async Task Predictions_are_retried_after_429_and_network_errors_with_the_same_body()
    {
        var handler = new ScriptedHandler(Error(HttpStatusCode.TooManyRequests, "queue_full"), NetworkError,
            Answer(HttpStatusCode.OK, """{"outputs": [{"embedding": [0.5, 0.25], "tokens": 3}]}"""));
        var (client, provider) = Make(handler);
        using var _ = provider;
        var output = Assert.Single(await client.EmbedWithHeadAsync("emb", ["a dog"]));
        Assert.Equal([0.5f, 0.25f], output.Embedding);
        Assert.Equal(3, handler.Requests.Count);
        Assert.Single(handler.Requests.Select(r => r.Body).Distinct());
        Assert.Equal("""{"inputs":["a dog"]}""", handler.Requests[0].Body);
    }

    [Theory]
    [InlineData(HttpStatusCode.BadRequest, "bad_request")]
    [InlineData(HttpStatusCode.Unauthorized, "unauthorized")]
    [InlineData(HttpStatusCode.NotFound, "unknown_head")]
    [InlineData(HttpStatusCode.Conflict, "stale_head")]
    [InlineData(HttpStatusCode.UnprocessableEntity, "invalid_input")]
    [InlineData(HttpStatusCode.InternalServerError, "internal_error")]
    [InlineData(HttpStatusCode.ServiceUnavailable, "unavailable")]   // without Retry-After: a head that failed
    [InlineData(HttpStatusCode.GatewayTimeout, "timeout")]
    public async Task Other_errors_are_final(HttpStatusCode status, string code)
    {
        var handler = new ScriptedHandler(Error(status, code), Answer(HttpStatusCode.OK, HeadsJson));
        var (client, provider) = Make(handler);
        using var _ = provider;
        var error = await Assert.ThrowsAsync<BertHostException>(() => client.PredictAsync("emb", ["a"]));
        Assert.Equal((status, code, "scripted " + code), (error.StatusCode, error.ErrorCode, error.Detail));
        Assert.Single(handler.Requests);
    }

    [Fact]
    public async Task Job_submissions_cancellations_and_promotions_are_never_retried()
    {
        var handler = new ScriptedHandler(Error(HttpStatusCode.ServiceUnavailable, "unavailable", retryAfter: 1), Answer(HttpStatusCode.Accepted, JobJson));
        var (client, provider) = Make(handler);
        using var _ = provider;
        var refused = await Assert.ThrowsAsync<BertHostException>(() => client.SubmitJobAsync(new JobRequest { Head = "sentiment", Train = JobData.Inline("x") }));
        Assert.Equal((503, TimeSpan.FromSeconds(1)), (refused.Status, refused.RetryAfter));
        Assert.Single(handler.Requests);

        handler = new ScriptedHandler(NetworkError, NetworkError, NetworkError, NetworkError, Answer(HttpStatusCode.OK, JobJson));
        var (client2, provider2) = Make(handler);
        using var __ = provider2;
        await Assert.ThrowsAsync<HttpRequestException>(() => client2.SubmitJobAsync(new JobRequest { Head = "sentiment" }, [JobUpload.FromStream("train", "t.tsv", new MemoryStream("a\t1\n"u8.ToArray()))]));
        await Assert.ThrowsAsync<HttpRequestException>(() => client2.CancelJobAsync("j1"));
        await Assert.ThrowsAsync<HttpRequestException>(() => client2.PromoteJobAsync("j1"));
        Assert.Equal([(HttpMethod.Post, "/prefix/v1/jobs"), (HttpMethod.Delete, "/prefix/v1/jobs/j1"), (HttpMethod.Post, "/prefix/v1/jobs/j1/promote")],
            handler.Requests.Select(r => (r.Method, r.Path)));
        // Reading jobs is repeatable: the same network error is retried.
        Assert.Equal("j1", (await client2.GetJobAsync("j1")).Id);
        Assert.Equal(5, handler.Requests.Count);
    }

    [Fact]
    public async Task An_attempt_that_times_out_is_retried_when_repeatable_and_a_timeout_otherwise()
    {
        var handler = new ScriptedHandler(Hang, Answer(HttpStatusCode.OK, HeadsJson));
        var (client, provider) = Make(handler, o => o.AttemptTimeout = TimeSpan.FromMilliseconds(300));
        using var _ = provider;
        Assert.Single(await client.ListHeadsAsync());
        Assert.Equal(2, handler.Requests.Count);

        handler = new ScriptedHandler(Hang);
        var (client2, provider2) = Make(handler, o => o.AttemptTimeout = TimeSpan.FromMilliseconds(300));
        using var __ = provider2;
        var timeout = await Assert.ThrowsAsync<TimeoutException>(() => client2.SubmitJobAsync(new JobRequest { Head = "sentiment" }));
        Assert.Contains("POST /v1/jobs did not complete in time", timeout.Message);
        Assert.Single(handler.Requests);

        // The call's timeout also bounds an answer whose body stops coming after the headers.
        handler = new ScriptedHandler((_, _) => Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(new StalledStream()) }));
        var (client3, provider3) = Make(handler, o => (o.AttemptTimeout, o.Timeout) = (TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(600)));
        using var ___ = provider3;
        Assert.Contains("GET /v1/heads did not complete in time", (await Assert.ThrowsAsync<TimeoutException>(() => client3.ListHeadsAsync())).Message);
    }

    /// <summary>A body that never delivers a byte.</summary>
    private sealed class StalledStream : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => 0; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("read asynchronously");
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }

    [Fact]
    public async Task Cancelling_a_call_in_flight_stops_it_without_a_retry()
    {
        var handler = new ScriptedHandler(Hang, Answer(HttpStatusCode.OK, HeadsJson));
        var (client, provider) = Make(handler);
        using var _ = provider;
        using var cancel = new CancellationTokenSource();
        var call = client.ListHeadsAsync(cancel.Token);
        await handler.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        Assert.Single(handler.Requests);
    }

    [Fact]
    public async Task No_retries_when_turned_off_and_a_failed_heads_503s_do_not_open_the_circuit()
    {
        var handler = new ScriptedHandler(Error(HttpStatusCode.TooManyRequests, "queue_full", retryAfter: 1), Answer(HttpStatusCode.OK, HeadsJson));
        var (client, provider) = Make(handler, o => o.MaxRetries = 0);
        using var _ = provider;
        Assert.Equal(429, (await Assert.ThrowsAsync<BertHostException>(() => client.ListHeadsAsync())).Status);
        Assert.Single(handler.Requests);

        // 150 answers of a head that failed (the standard breaker would open after 10% of 100 failures), then a good one.
        var steps = Enumerable.Repeat(Error(HttpStatusCode.ServiceUnavailable, "unavailable"), 150).Append(Answer(HttpStatusCode.OK, HeadsJson)).ToArray();
        handler = new ScriptedHandler(steps);
        var (client2, provider2) = Make(handler);
        using var __ = provider2;
        for (var i = 0; i < 150; i++) await Assert.ThrowsAsync<BertHostException>(() => client2.PredictAsync("broken", ["a"]));
        Assert.Single(await client2.ListHeadsAsync());
    }

    [Fact]
    public async Task Error_bodies_that_are_not_json_and_answers_that_are_not_the_documented_json_are_typed_errors()
    {
        var handler = new ScriptedHandler(
            (_, _) => Task.FromResult(new HttpResponseMessage(HttpStatusCode.BadGateway) { Content = new StringContent("<html>proxy down</html>") }),
            Answer(HttpStatusCode.OK, """{"heads": "not a list"}"""));
        var (client, provider) = Make(handler);
        using var _ = provider;
        var proxy = await Assert.ThrowsAsync<BertHostException>(() => client.ListHeadsAsync());
        Assert.Equal((502, "<html>proxy down</html>", null), (proxy.Status, proxy.Detail, proxy.ErrorCode));
        var shape = await Assert.ThrowsAsync<BertHostException>(() => client.ListHeadsAsync());
        Assert.Equal(200, shape.Status);
        Assert.IsType<System.Text.Json.JsonException>(shape.InnerException);
    }

    [Fact]
    public void Options_are_validated_when_the_client_is_made()
    {
        var services = new ServiceCollection();
        services.AddBertHostClient(o => o.ApiKey = "k");
        using var provider = services.BuildServiceProvider();
        var missing = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<BertHostClient>());
        Assert.Contains("BaseAddress is required", missing.Message);
        Assert.Throws<ArgumentException>(() => BertHostClient.Create(new BertHostClientOptions { BaseAddress = new Uri("ftp://x/") }));
        Assert.Throws<ArgumentException>(() => BertHostClient.Create(new BertHostClientOptions
        {
            BaseAddress = new Uri("http://x/"), AttemptTimeout = TimeSpan.FromMinutes(10), Timeout = TimeSpan.FromMinutes(5),
        }));
        Assert.Throws<ArgumentException>(() => BertHostClient.Create(new BertHostClientOptions { BaseAddress = new Uri("http://x/"), ApiKey = " key\n" }));
    }
}
