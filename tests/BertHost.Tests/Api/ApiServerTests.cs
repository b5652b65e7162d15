using BertHost.Tests.Support;
using System.Net;
using System.Text;
using System.Text.Json;
using BertHost.Api;
using BertHost.Core.Config;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace BertHost.Tests.Api;

/// <summary>Every endpoint's success shape, against the real Kestrel server.</summary>
public sealed class ApiServerTests
{
    [Fact]
    public void Options_come_from_the_host_section()
    {
        var options = ApiOptions.FromHost(new HostSection
        {
            Urls = "http://127.0.0.1:9000;http://[::1]:9000", MaxRequestBytes = 1234, MaxInputsPerRequest = 7, ShutdownTimeoutSeconds = 12,
        });
        Assert.Equal("http://127.0.0.1:9000;http://[::1]:9000", options.Urls);
        Assert.Equal(1234, options.MaxRequestBytes);
        Assert.Equal(7, options.MaxInputsPerRequest);
        Assert.Equal(TimeSpan.FromSeconds(12), options.ShutdownTimeout);
        Assert.Equal("http://127.0.0.1:5080", new ApiOptions().Urls);
    }

    [Fact]
    public void Invalid_options_are_refused()
    {
        var engine = new FakeEngine();
        Assert.Throws<ArgumentOutOfRangeException>(() => ApiServer.Build(new ApiOptions { MaxRequestBytes = 0 }, engine, new()));
        Assert.Throws<ArgumentOutOfRangeException>(() => ApiServer.Build(new ApiOptions { MaxInputsPerRequest = 0 }, engine, new()));
        Assert.Throws<ArgumentException>(() => ApiServer.Build(new ApiOptions { Urls = " " }, engine, new()));
    }

    [Fact]
    public async Task Default_console_logging_serves()
    {
        await using var app = ApiServer.Build(new ApiOptions { Urls = "http://127.0.0.1:0" }, new FakeEngine(), new());
        await app.StartAsync();
        using var client = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
        using var response = await client.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await app.StopAsync();
    }

    [Fact]
    public async Task Healthz_answers_ok()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.Client.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("""{"status":"ok"}""", await response.Content.ReadAsStringAsync());
        Assert.Equal("utf-8", response.Content.Headers.ContentType?.CharSet);
    }

    [Fact]
    public async Task Readyz_is_200_when_ready_and_503_when_not_listing_heads()
    {
        await using var server = await ApiTestServer.StartAsync();
        using (var ready = await server.Client.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            Assert.Equal(
                """{"status":"ready","heads":[{"name":"sentiment","state":"ready","required":true},{"name":"ner","state":"ready","required":true},{"name":"broken","state":"failed","required":true,"error":"plugin not found"}]}""",
                await ready.Content.ReadAsStringAsync());
        }
        server.Engine.Ready = false;
        using var notReady = await server.Client.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        var json = await ApiTestServer.JsonOf(notReady);
        Assert.Equal("not_ready", json.GetProperty("status").GetString());
        Assert.Equal(3, json.GetProperty("heads").GetArrayLength());
        using var health = await server.Client.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Heads_lists_every_head_in_order_with_optional_fields_only_when_set()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.Client.GetAsync("/v1/heads");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(
            """{"heads":[""" +
            """{"name":"sentiment","kind":"sequence_classification","state":"ready","labels":["negative","positive"],"plugin":"Cls.dll","plugin_sha256":"ab12"},""" +
            """{"name":"ner","kind":"token_classification","state":"ready","labels":["O","B-PER","I-PER"]},""" +
            """{"name":"broken","kind":"sequence_classification","state":"failed","error":"plugin not found","labels":[]}""" +
            "]}",
            await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Head_by_name_adds_details()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.Client.GetAsync("/v1/heads/sentiment");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(
            """{"name":"sentiment","kind":"sequence_classification","state":"ready","labels":["negative","positive"],"plugin":"Cls.dll","plugin_sha256":"ab12","details":{"pooling":"cls"}}""",
            await response.Content.ReadAsStringAsync());
        using var ner = await server.Client.GetAsync("/v1/heads/ner");
        Assert.Equal(JsonValueKind.Object, (await ApiTestServer.JsonOf(ner)).GetProperty("details").ValueKind);
    }

    [Fact]
    public async Task Unknown_head_is_404_unknown_head()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var get = await server.Client.GetAsync("/v1/heads/nope");
        Assert.Contains("nope", await ApiTestServer.AssertErrorAsync(get, HttpStatusCode.NotFound, "unknown_head"));
        using var predict = await server.PostJsonAsync("/v1/heads/nope/predict", """{"inputs":["a"]}""");
        await ApiTestServer.AssertErrorAsync(predict, HttpStatusCode.NotFound, "unknown_head");
        Assert.Equal(0, server.Engine.Calls);
    }

    [Fact]
    public async Task Body_describes_the_body()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.Client.GetAsync("/v1/body");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("""{"model":"/models/tiny-bert","hidden_size":32,"device":"cpu"}""", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Predict_returns_one_output_per_input_in_order()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.PostJsonAsync("/v1/heads/sentiment/predict",
            """{"inputs": ["first", {"text": "second", "text_pair": "x"}, "third"], "parameters": {"top_k": 2}}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(
            """{"outputs":[{"head":"sentiment","index":0,"input":"first"},{"head":"sentiment","index":1,"input":{"text":"second","text_pair":"x"}},{"head":"sentiment","index":2,"input":"third"}]}""",
            await response.Content.ReadAsStringAsync());
        Assert.Equal("""{"top_k": 2}""", server.Engine.LastParameters.GetRawText());
    }

    [Fact]
    public async Task Predict_without_parameters_passes_an_empty_object()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.PostJsonAsync("/v1/heads/ner/predict", """{"inputs": ["a"]}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(JsonValueKind.Object, server.Engine.LastParameters.ValueKind);
        Assert.Empty(server.Engine.LastParameters.EnumerateObject());
        using var nullParameters = await server.PostJsonAsync("/v1/heads/ner/predict", """{"inputs": ["a"], "parameters": null}""");
        Assert.Equal(HttpStatusCode.OK, nullParameters.StatusCode);
    }

    [Fact]
    public async Task Predict_accepts_json_with_charset_and_a_utf8_body()
    {
        await using var server = await ApiTestServer.StartAsync();
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes("""{"inputs":["héllo wörld ✓"]}"""));
        content.Headers.TryAddWithoutValidation("Content-Type", "application/json; charset=UTF-8");
        using var response = await server.Client.PostAsync("/v1/heads/sentiment/predict", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await ApiTestServer.JsonOf(response);
        Assert.Equal("héllo wörld ✓", json.GetProperty("outputs")[0].GetProperty("input").GetString());
    }

    [Fact]
    public async Task Predict_many_returns_an_object_per_input_keyed_by_head()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.PostJsonAsync("/v1/predict", """{"heads": ["sentiment", "ner"], "inputs": ["a", "b"]}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(
            """{"outputs":[""" +
            """{"sentiment":{"head":"sentiment","index":0,"input":"a"},"ner":{"head":"ner","index":0,"input":"a"}},""" +
            """{"sentiment":{"head":"sentiment","index":1,"input":"b"},"ner":{"head":"ner","index":1,"input":"b"}}""" +
            "]}",
            await response.Content.ReadAsStringAsync());
        Assert.Equal(["sentiment", "ner"], server.Engine.LastHeads);
    }

    [Theory]
    [InlineData("""{"inputs": ["a"]}""", HttpStatusCode.BadRequest, "bad_request", "heads")]
    [InlineData("""{"heads": "sentiment", "inputs": ["a"]}""", HttpStatusCode.BadRequest, "bad_request", "heads")]
    [InlineData("""{"heads": [], "inputs": ["a"]}""", HttpStatusCode.BadRequest, "bad_request", "heads")]
    [InlineData("""{"heads": ["sentiment", 3], "inputs": ["a"]}""", HttpStatusCode.BadRequest, "bad_request", "heads[1]")]
    [InlineData("""{"heads": ["sentiment", "sentiment"], "inputs": ["a"]}""", HttpStatusCode.BadRequest, "bad_request", "heads[1]")]
    [InlineData("""{"heads": ["sentiment", "nope"], "inputs": ["a"]}""", HttpStatusCode.NotFound, "unknown_head", "heads[1]")]
    [InlineData("""{"heads": ["ner", "broken"], "inputs": ["a"]}""", HttpStatusCode.ServiceUnavailable, "unavailable", "heads[1]")]
    [InlineData("""{"heads": ["ner"], "inputs": []}""", HttpStatusCode.BadRequest, "bad_request", "inputs")]
    [InlineData("""{"heads": ["ner"]}""", HttpStatusCode.BadRequest, "bad_request", "inputs")]
    public async Task Predict_many_refuses_bad_head_lists(string body, HttpStatusCode status, string code, string field)
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.PostJsonAsync("/v1/predict", body);
        await ApiTestServer.AssertErrorAsync(response, status, code, field);
        Assert.Equal(0, server.Engine.Calls);
    }

    [Fact]
    public async Task Concurrent_requests_are_all_answered_in_input_order()
    {
        await using var server = await ApiTestServer.StartAsync();
        // No request is answered until 8 are in the engine at once: a server that serves one request at a time hangs here.
        server.Engine.OpenWhenConcurrent = 8;
        var tasks = Enumerable.Range(0, 32).Select(async r =>
        {
            var inputs = Enumerable.Range(0, 1 + r % 5).Select(i => $"r{r}-i{i}").ToArray();
            using var response = await server.PostJsonAsync(r % 2 == 0 ? "/v1/heads/sentiment/predict" : "/v1/heads/ner/predict",
                JsonSerializer.Serialize(new { inputs }));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var outputs = (await ApiTestServer.JsonOf(response)).GetProperty("outputs");
            Assert.Equal(inputs, outputs.EnumerateArray().Select(o => o.GetProperty("input").GetString()).ToArray());
            Assert.Equal(Enumerable.Range(0, inputs.Length), outputs.EnumerateArray().Select(o => o.GetProperty("index").GetInt32()));
        }).ToList();
        await Waits.Within(Task.WhenAll(tasks), "32 requests, answered only once 8 are served concurrently");
        Assert.Equal(32, server.Engine.Calls);
    }

    [Fact]
    public async Task Metrics_count_requests_responses_and_errors()
    {
        await using var server = await ApiTestServer.StartAsync();
        (await server.PostJsonAsync("/v1/heads/sentiment/predict", """{"inputs": ["a", "b", "c"]}""")).Dispose();
        (await server.PostJsonAsync("/v1/heads/sentiment/predict", """{"inputs": ["a"]}""")).Dispose();
        (await server.PostJsonAsync("/v1/heads/sentiment/predict", """{"inputs": []}""")).Dispose();
        (await server.PostJsonAsync("/v1/predict", """{"heads": ["sentiment", "ner"], "inputs": ["a", "b"]}""")).Dispose();
        (await server.Client.GetAsync("/v1/heads/nope")).Dispose();
        (await server.Client.GetAsync("/no/such/route")).Dispose();
        (await server.Client.GetAsync("/healthz")).Dispose();

        using var response = await server.Client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        var text = await response.Content.ReadAsStringAsync();
        ServingMetricsTests.AssertValidExposition(text);
        Assert.Contains("berthost_requests_total{route=\"/v1/heads/{name}/predict\",head=\"sentiment\"} 3\n", text);
        Assert.Contains("berthost_request_inputs_total{route=\"/v1/heads/{name}/predict\",head=\"sentiment\"} 4\n", text);
        Assert.Contains("berthost_requests_total{route=\"/v1/predict\",head=\"\"} 1\n", text);
        Assert.Contains("berthost_request_inputs_total{route=\"/v1/predict\",head=\"\"} 2\n", text);
        Assert.Contains("berthost_requests_total{route=\"/v1/heads/{name}\",head=\"\"} 1\n", text); // unknown head: no label value from the client
        Assert.Contains("berthost_requests_total{route=\"unmatched\",head=\"\"} 1\n", text);
        Assert.Contains("berthost_responses_total{route=\"/v1/heads/{name}/predict\",status=\"200\"} 2\n", text);
        Assert.Contains("berthost_responses_total{route=\"/v1/heads/{name}/predict\",status=\"400\"} 1\n", text);
        Assert.Contains("berthost_responses_total{route=\"/v1/heads/{name}\",status=\"404\"} 1\n", text);
        Assert.Contains("berthost_responses_total{route=\"unmatched\",status=\"404\"} 1\n", text);
        Assert.Contains("berthost_responses_total{route=\"/healthz\",status=\"200\"} 1\n", text);
        Assert.Contains("berthost_request_errors_total{head=\"sentiment\",code=\"bad_request\"} 1\n", text);
        Assert.Contains("berthost_request_errors_total{head=\"\",code=\"unknown_head\"} 1\n", text);
        Assert.Contains("berthost_request_errors_total{head=\"\",code=\"not_found\"} 1\n", text);
        Assert.Contains("berthost_http_request_duration_seconds_count{route=\"/v1/heads/{name}/predict\"} 3\n", text);
    }

    [Fact]
    public async Task OpenApi_document_parses_and_describes_every_route_and_the_error_schema()
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.Client.GetAsync("/openapi.json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var doc = await ApiTestServer.JsonOf(response);
        Assert.StartsWith("3.", doc.GetProperty("openapi").GetString());
        var paths = doc.GetProperty("paths");

        // The document lists exactly the routes the server maps, with their methods.
        var mapped = server.App.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .SelectMany(e => e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()!.HttpMethods
                .Select(m => (Method: m, Pattern: e.RoutePattern.RawText!)))
            .OrderBy(r => r.Pattern).ThenBy(r => r.Method).ToList();
        // Every route but the document itself and its interactive page (/docs and its assets) is an API route.
        var api = mapped.Where(r => r.Pattern != "/openapi.json" && !r.Pattern.StartsWith("/docs/")).ToList();
        Assert.Equal(ApiServer.Routes.OrderBy(r => r.Pattern).ThenBy(r => r.Method), api);
        var documented = paths.EnumerateObject()
            .SelectMany(p => p.Value.EnumerateObject().Select(op => (Method: op.Name.ToUpperInvariant(), Pattern: p.Name)))
            .OrderBy(r => r.Pattern).ThenBy(r => r.Method).ToList();
        Assert.Equal(api, documented);

        // Every $ref resolves.
        var components = doc.GetProperty("components");
        foreach (var reference in Refs(doc))
        {
            var parts = reference.TrimStart('#', '/').Split('/');
            Assert.Equal("components", parts[0]);
            Assert.True(components.GetProperty(parts[1]).TryGetProperty(parts[2], out _), $"unresolved {reference}");
        }

        var schemas = components.GetProperty("schemas");
        var error = schemas.GetProperty("Error").GetProperty("properties").GetProperty("error");
        if (error.TryGetProperty("$ref", out var body)) error = schemas.GetProperty(body.GetString()!.Split('/')[^1]);
        Assert.Equal(["code", "message", "field"], error.GetProperty("required").EnumerateArray().Select(e => e.GetString()));
        var codes = error.GetProperty("properties").GetProperty("code").GetProperty("enum").EnumerateArray().Select(e => e.GetString()).ToHashSet();
        foreach (var code in typeof(ApiErrorCodes).GetFields().Where(f => f.IsLiteral).Select(f => (string)f.GetValue(null)!))
            Assert.Contains(code, codes);
        var predictResponses = paths.GetProperty("/v1/heads/{name}/predict").GetProperty("post").GetProperty("responses");
        foreach (var status in new[] { "200", "400", "404", "413", "415", "422", "429", "500", "503" })
            Assert.True(predictResponses.TryGetProperty(status, out _), $"predict does not document {status}");
    }

    private static IEnumerable<string> Refs(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in element.EnumerateObject())
                {
                    if (p.Name == "$ref") yield return p.Value.GetString()!;
                    else foreach (var r in Refs(p.Value)) yield return r;
                }
                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                foreach (var r in Refs(item)) yield return r;
                break;
        }
    }

    [Fact]
    public async Task Stopping_drains_in_flight_requests()
    {
        var server = await ApiTestServer.StartAsync();
        try
        {
            server.Engine.Delay = TimeSpan.FromMilliseconds(700);
            var inFlight = server.PostJsonAsync("/v1/heads/sentiment/predict", """{"inputs": ["slow"]}""");
            await Waits.Until(() => server.Engine.Calls > 0, "the request to reach the engine");
            var stopped = server.App.StopAsync();
            using var response = await inFlight;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("slow", (await ApiTestServer.JsonOf(response)).GetProperty("outputs")[0].GetProperty("input").GetString());
            await stopped;
            using var fresh = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => fresh.GetAsync("/healthz"));
        }
        finally
        {
            server.Client.Dispose();
            await server.App.DisposeAsync();
        }
    }
}
