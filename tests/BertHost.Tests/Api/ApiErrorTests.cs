using BertHost.Tests.Support;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using BertHost.Core.Serving;
using Microsoft.Extensions.Logging;

namespace BertHost.Tests.Api;

/// <summary>Every error: status, code, field, and the exact JSON shape.</summary>
public sealed class ApiErrorTests
{
    private const string Predict = "/v1/heads/sentiment/predict";

    [Fact]
    public async Task Malformed_json_is_400_saying_where()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.PostJsonAsync(Predict, "{\n  \"inputs\": [\"a\",, \"b\"]\n}");
        var message = await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.BadRequest, "bad_request");
        Assert.StartsWith("malformed JSON at line 2, byte 18: ", message);
        Assert.DoesNotContain("LineNumber", message);
        Assert.Equal(0, server.Engine.Calls);
    }

    [Theory]
    [InlineData("{\"inputs\": [\"a\"]} trailing")]
    [InlineData("{\"inputs\": [\"a\"]")]
    [InlineData("not json")]
    public async Task Other_malformed_bodies_are_400(string body)
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.PostJsonAsync(Predict, body);
        Assert.StartsWith("malformed JSON at line 1", await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.BadRequest, "bad_request"));
    }

    [Fact]
    public async Task Empty_body_is_400()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.PostJsonAsync(Predict, "");
        Assert.Contains("empty", await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.BadRequest, "bad_request"));
    }

    [Theory]
    [InlineData("""["a"]""", null, "request body must be a JSON object, got an array")]
    [InlineData("""{}""", "inputs", "inputs is required")]
    [InlineData("""{"parameters": {}}""", "inputs", "inputs is required")]
    [InlineData("""{"inputs": "just a string"}""", "inputs", "inputs must be an array, got a string")]
    [InlineData("""{"inputs": {"text": "an object"}}""", "inputs", "inputs must be an array, got an object")]
    [InlineData("""{"inputs": null}""", "inputs", "inputs must be an array, got null")]
    [InlineData("""{"inputs": []}""", "inputs", "inputs must not be empty")]
    [InlineData("""{"inputs": ["a"], "parameters": [1]}""", "parameters", "parameters must be an object, got an array")]
    [InlineData("""{"input": ["a"]}""", "input", "unknown field 'input'; expected inputs and parameters")]
    public async Task Wrong_shapes_are_400_with_the_field(string body, string? field, string message)
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.PostJsonAsync(Predict, body);
        Assert.Equal(message, await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.BadRequest, "bad_request", field));
        Assert.Equal(0, server.Engine.Calls);
    }

    [Fact]
    public async Task Too_many_inputs_is_413_on_inputs()
    {
        await using var server = await ApiTestServer.StartAsync(o => o with { MaxInputsPerRequest = 3 });
        using var ok = await server.PostJsonAsync(Predict, """{"inputs": ["a", "b", "c"]}""");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        using var response = await server.PostJsonAsync(Predict, """{"inputs": ["a", "b", "c", "d"]}""");
        Assert.Equal("too many inputs: 4 (at most 3 per request)",
            await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "payload_too_large", "inputs"));
    }

    [Fact]
    public async Task Ten_megabyte_body_with_content_length_is_refused_quickly()
    {
        await using var server = await ApiTestServer.StartAsync();
        var body = new byte[10 * 1024 * 1024];
        Array.Fill(body, (byte)' ');
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await Waits.Within(server.Client.PostAsync(Predict, content), "the refusal of a 10 MB body");
        Assert.Contains("larger than 1048576 bytes",
            await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "payload_too_large"));
        Assert.Equal(0, server.Engine.Calls);
        // The server still serves.
        using var health = await server.Client.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Ten_megabyte_chunked_body_is_refused_without_reading_it_whole()
    {
        await using var server = await ApiTestServer.StartAsync();
        var stream = new CountingStream(10 * 1024 * 1024);
        var content = new StreamContent(stream);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, Predict) { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using var response = await Waits.Within(server.Client.SendAsync(request), "the refusal of a 10 MB chunked body");
        await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        Assert.Equal(0, server.Engine.Calls);
    }

    [Fact]
    public async Task Ten_megabyte_body_is_refused_before_it_is_sent_when_the_client_expects_100_continue()
    {
        await using var server = await ApiTestServer.StartAsync();
        var stream = new CountingStream(10 * 1024 * 1024);
        var content = new StreamContent(stream);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        content.Headers.ContentLength = 10 * 1024 * 1024;
        using var request = new HttpRequestMessage(HttpMethod.Post, Predict) { Content = content };
        request.Headers.ExpectContinue = true;
        using var response = await server.Client.SendAsync(request);
        await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        Assert.Equal(0, stream.Served);
    }

    [Fact]
    public async Task Body_far_over_the_limit_is_cut_off_not_read()
    {
        // Above Kestrel's backstop (16 x the limit, at least 64 MiB) the connection is closed instead of drained.
        Assert.Equal(64L << 20, BertHost.Api.ApiServer.BodySizeBackstop(1 << 20));
        Assert.Equal(160L << 20, BertHost.Api.ApiServer.BodySizeBackstop(10 << 20));
        Assert.Equal(long.MaxValue, BertHost.Api.ApiServer.BodySizeBackstop(long.MaxValue / 8));
        await using var server = await ApiTestServer.StartAsync(o => o with { MaxRequestBytes = 1024 });
        var stream = new CountingStream(1L << 30);
        var content = new StreamContent(stream);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        content.Headers.ContentLength = 1L << 30;
        try
        {
            using var response = await Waits.Within(server.Client.PostAsync(Predict, content), "the refusal of a 1 GB body");
            await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        }
        catch (HttpRequestException)
        {
            // The server closed the connection: the client could not finish sending.
        }
        Assert.True(stream.Served < 1L << 30, "the server read the whole gigabyte");
        Assert.Equal(0, server.Engine.Calls);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData(null)]
    [InlineData("application/json; charset=latin1")]
    public async Task Non_json_content_type_is_415(string? contentType)
    {
        await using var server = await ApiTestServer.StartAsync();
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes("""{"inputs": ["a"]}"""));
        if (contentType is not null) content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        using var response = await server.Client.PostAsync(Predict, content);
        await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
    }

    [Theory]
    [InlineData(ServingError.BadRequest, HttpStatusCode.BadRequest, "bad_request")]
    [InlineData(ServingError.UnknownHead, HttpStatusCode.NotFound, "unknown_head")]
    [InlineData(ServingError.PayloadTooLarge, HttpStatusCode.RequestEntityTooLarge, "payload_too_large")]
    [InlineData(ServingError.InvalidInput, HttpStatusCode.UnprocessableEntity, "invalid_input")]
    [InlineData(ServingError.QueueFull, HttpStatusCode.TooManyRequests, "queue_full")]
    [InlineData(ServingError.Unavailable, HttpStatusCode.ServiceUnavailable, "unavailable")]
    public async Task Engine_errors_map_to_their_status_code_and_field(ServingError error, HttpStatusCode status, string code)
    {
        await using var server = await ApiTestServer.StartAsync();
        server.Engine.Throw = new ServingException(error, $"engine says {error}", "inputs[1].text");
        foreach (var (path, body) in new[] { (Predict, """{"inputs": ["a", {"text": 3}]}"""), ("/v1/predict", """{"heads": ["ner"], "inputs": ["a", {"text": 3}]}""") })
        {
            using var response = await server.PostJsonAsync(path, body);
            Assert.Equal($"engine says {error}", await ApiTestServer.AssertErrorAsync(response, status, code, "inputs[1].text"));
            // Only a condition that clears by waiting invites a retry: a full queue; a head that failed does not clear.
            if (error is ServingError.QueueFull)
                Assert.Equal("1", response.Headers.GetValues("Retry-After").Single());
            else
                Assert.False(response.Headers.Contains("Retry-After"));
        }
        string[] expected =
        [
            $"berthost_request_errors_total{{head=\"sentiment\",code=\"{code}\"}} 1\n",
            $"berthost_request_errors_total{{head=\"\",code=\"{code}\"}} 1\n",
        ];
        var metrics = await MetricsOnceAsync(server, text => expected.All(text.Contains));
        foreach (var line in expected) Assert.Contains(line, metrics);
    }

    [Fact]
    public async Task Engine_error_without_field_has_null_field()
    {
        await using var server = await ApiTestServer.StartAsync();
        server.Engine.Throw = new ServingException(ServingError.QueueFull, "queue is full (4096 inputs waiting)");
        using var response = await server.PostJsonAsync(Predict, """{"inputs": ["a"]}""");
        await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.TooManyRequests, "queue_full");
    }

    [Fact]
    public async Task Failed_head_is_503_without_asking_the_engine()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.PostJsonAsync("/v1/heads/broken/predict", """{"inputs": ["a"]}""");
        Assert.Equal("head 'broken' is failed: plugin not found",
            await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.ServiceUnavailable, "unavailable"));
        Assert.Equal(0, server.Engine.Calls);
    }

    [Fact]
    public async Task Unexpected_exception_is_500_generic_and_logged()
    {
        await using var server = await ApiTestServer.StartAsync();
        server.Engine.Throw = new InvalidOperationException("secret internal detail");
        using var response = await server.PostJsonAsync(Predict, """{"inputs": ["a"]}""");
        var text = await response.Content.ReadAsStringAsync();
        var message = await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.InternalServerError, "internal_error");
        Assert.DoesNotContain("secret", text);
        Assert.DoesNotContain("   at ", text);
        Assert.Equal("internal error; see the host's log", message);
        Assert.Contains(server.Logs.Entries, e => e.Level == LogLevel.Error && e.Exception?.Message == "secret internal detail");
    }

    [Fact]
    public async Task A_plugin_bug_is_503_to_the_client_and_logged_as_an_error_with_its_stack_trace()
    {
        await using var server = await ApiTestServer.StartAsync();
        // What the engine throws when a head's Encode fails with something other than a HeadInputException.
        Exception bug;
        try
        {
            throw new NullReferenceException("a bug inside the plugin's Encode");
        }
        catch (NullReferenceException e)
        {
            bug = e;
        }
        server.Engine.Throw = new ServingException(ServingError.Unavailable, "head 'x' failed while encoding input 0: a bug inside the plugin's Encode", "inputs[0]", bug);
        using var response = await server.PostJsonAsync(Predict, """{"inputs": ["a"]}""");
        var text = await response.Content.ReadAsStringAsync();
        await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.ServiceUnavailable, "unavailable", "inputs[0]");
        Assert.DoesNotContain("   at ", text);
        var logged = Assert.Single(server.Logs.Entries, e => e.Level == LogLevel.Error);
        Assert.Same(bug, logged.Exception);   // the logger prints the exception with its stack trace
        Assert.NotNull(logged.Exception!.StackTrace);
        Assert.Contains("a head plugin threw System.NullReferenceException: a bug inside the plugin's Encode", logged.Message);
    }

    [Fact]
    public async Task Wrong_number_of_outputs_is_500()
    {
        await using var server = await ApiTestServer.StartAsync();
        server.Engine.Outputs = _ => [JsonValue.Create(1)];
        using var response = await server.PostJsonAsync(Predict, """{"inputs": ["a", "b"]}""");
        await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.InternalServerError, "internal_error");
        Assert.Contains(server.Logs.Entries, e => e.Level == LogLevel.Error && e.Exception is InvalidOperationException);
    }

    [Theory]
    [InlineData("GET", "/no/such/route")]
    [InlineData("GET", "/v1")]
    [InlineData("POST", "/v1/heads/sentiment/predict/extra")]
    [InlineData("GET", "/favicon.ico")]
    public async Task Unknown_route_is_404_json(string method, string path)
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
        Assert.Equal($"no route {method} {path}", await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.NotFound, "not_found"));
    }

    [Theory]
    [InlineData("POST", "/healthz", "GET")]
    [InlineData("GET", "/v1/heads/sentiment/predict", "POST")]
    [InlineData("DELETE", "/v1/heads", "GET")]
    [InlineData("PUT", "/v1/predict", "POST")]
    public async Task Wrong_method_is_405_json_with_allow(string method, string path, string allowed)
    {
        await using var server = await ApiTestServer.StartAsync();
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method is "POST" or "PUT") request.Content = new StringContent("{}", Encoding.UTF8, "application/json");
        using var response = await server.Client.SendAsync(request);
        await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.MethodNotAllowed, "method_not_allowed");
        Assert.Equal(allowed, string.Join(",", response.Content.Headers.Allow));
    }

    [Fact]
    public async Task Client_cancellation_reaches_the_engine()
    {
        await using var server = await ApiTestServer.StartAsync();
        server.Engine.Delay = TimeSpan.FromSeconds(30);
        using var cts = new CancellationTokenSource();
        var request = server.Client.PostAsync(Predict, new StringContent("""{"inputs": ["a"]}""", Encoding.UTF8, "application/json"), cts.Token);
        await Waits.Until(() => server.Engine.Calls > 0, "the request to reach the engine");
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        // The server records the abandoned request (status 499) once the engine observes cancellation.
        var metrics = await MetricsOnceAsync(server, text => text.Contains("status=\"499\""));
        Assert.Contains("berthost_responses_total{route=\"/v1/heads/{name}/predict\",status=\"499\"} 1\n", metrics);
    }

    /// <summary>
    /// The metrics text once <paramref name="ready"/> holds (or after 5 s): the server records a request in the
    /// middleware's finally block, after the response has gone out, so a client can read the metrics first.
    /// </summary>
    private static async Task<string> MetricsOnceAsync(ApiTestServer server, Func<string, bool> ready)
    {
        var text = server.Metrics.ToPrometheusText();
        for (var i = 0; i < 200 && !ready(text); i++)
        {
            await Task.Delay(25);
            text = server.Metrics.ToPrometheusText();
        }
        return text;
    }

    /// <summary>A stream of spaces of a given length that counts what was read from it.</summary>
    private sealed class CountingStream(long length) : Stream
    {
        private long _served;
        public long Served => Interlocked.Read(ref _served);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Served; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - Served);
            Array.Fill(buffer, (byte)' ', offset, n);
            Interlocked.Add(ref _served, n);
            return n;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
