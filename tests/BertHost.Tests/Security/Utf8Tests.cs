using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using BertHost.Tests.Api;
using BertHost.Tests.Jobs;

namespace BertHost.Tests.Security;

/// <summary>
/// Findings "invalid UTF-8 gets 5xx" and the minor request-reading ones: undecodable strings are a 400 naming the field
/// in every position, a quoted charset is accepted, unknown request parameters are refused naming them.
/// </summary>
public sealed class Utf8Tests
{
    /// <summary>Undecodable strings as they reach the server: raw bytes that are not UTF-8, and escapes leaving a lone surrogate.</summary>
    private static readonly string[] Bad = ["raw:FF", "raw:C328", "raw:EDA080", "raw:F4908080", "esc:\\ud800", "esc:\\udc00x", "esc:a\\ud83d"];

    /// <summary>Where the bad string goes ({0}), the route, and the field the error must name.</summary>
    private static readonly (string Template, string Route, string? Field)[] Positions =
    [
        ("""{"inputs": ["{0}"]}""", "/v1/heads/sentiment/predict", "inputs[0]"),
        ("""{"inputs": ["ok", {"text": "{0}"}]}""", "/v1/heads/sentiment/predict", "inputs[1].text"),
        ("""{"inputs": [{"{0}": "x"}]}""", "/v1/heads/sentiment/predict", "inputs[0]"),
        ("""{"{0}": 1, "inputs": ["a"]}""", "/v1/heads/sentiment/predict", null),
        ("""{"inputs": ["a"], "parameters": {"top_k": "{0}"}}""", "/v1/heads/sentiment/predict", "parameters.top_k"),
        ("""{"inputs": ["a"], "parameters": {"{0}": 1}}""", "/v1/heads/sentiment/predict", "parameters"),
        ("""{"heads": ["{0}"], "inputs": ["a"]}""", "/v1/predict", "heads[0]"),
        ("""{"heads": ["sentiment"], "inputs": [["nested", "{0}"]]}""", "/v1/predict", "inputs[0][1]"),
    ];

    private static byte[] Body(string template, string bad)
    {
        var parts = template.Split("{0}");
        var inner = bad.StartsWith("raw:", StringComparison.Ordinal) ? Convert.FromHexString(bad[4..]) : Encoding.UTF8.GetBytes(bad[4..]);
        return [.. Encoding.UTF8.GetBytes(parts[0]), .. inner, .. Encoding.UTF8.GetBytes(parts[1])];
    }

    private static ByteArrayContent Json(byte[] body, string contentType = "application/json")
    {
        var content = new ByteArrayContent(body);
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        return content;
    }

    [Fact]
    public async Task Undecodable_strings_are_400_naming_the_field_in_every_position_and_never_reach_the_engine()
    {
        await using var server = await ApiTestServer.StartAsync();
        foreach (var bad in Bad)
        foreach (var (template, route, field) in Positions)
        {
            using var response = await server.Client.PostAsync(route, Json(Body(template, bad)));
            var message = await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.BadRequest, "bad_request", field);
            Assert.Contains("not valid UTF-8 text", message);
            Assert.False(response.Headers.Contains("Retry-After"));
        }
        Assert.Equal(0, server.Engine.Calls);
    }

    [Fact]
    public async Task Undecodable_strings_in_job_fields_are_400_naming_the_field_and_queue_nothing()
    {
        await using var host = await JobsHost.StartAsync();
        (string Template, string? Field)[] positions =
        [
            ("""{"head": "{0}", "train": "x"}""", "head"),
            ("""{"{0}": "sentiment"}""", null),
            ("""{"mode": "multitask", "tasks": [{"head": "sentiment", "train": {"content": "{0}"}}, {"head": "fixed", "train": "a"}]}""", "tasks[0].train.content"),
            ("""{"kind": "pretrain", "corpus": ["small.txt", "{0}"]}""", "corpus[1]"),
        ];
        foreach (var bad in Bad)
        foreach (var (template, field) in positions)
        {
            using var response = await host.Client.PostAsync("/v1/jobs", Json(Body(template, bad)));
            var message = await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.BadRequest, "bad_request", field);
            Assert.Contains("not valid UTF-8 text", message);
        }
        // The same in the JSON part of a multipart submission.
        using var form = new MultipartFormDataContent();
        var part = new ByteArrayContent(Body("""{"head": "{0}"}""", "raw:FF"));
        part.Headers.TryAddWithoutValidation("Content-Type", "application/json");
        form.Add(part, "job");
        using var multipart = await host.Client.PostAsync("/v1/jobs", form);
        await ApiTestServer.AssertErrorAsync(multipart, HttpStatusCode.BadRequest, "bad_request", "head");
        Assert.Empty((await host.GetAsync("/v1/jobs")).Body["jobs"]!.AsArray());
    }

    [Fact]
    public async Task With_real_heads_bad_text_is_the_clients_error_not_the_heads()
    {
        await using var host = await NerHost.StartAsync();
        foreach (var route in new[] { "/v1/heads/ner/predict", "/v1/heads/sentiment/predict" })
        {
            using var response = await host.Client.PostAsync(route, Json(Body("""{"inputs": [{"text": "{0}"}]}""", "esc:\\ud800")));
            await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.BadRequest, "bad_request", "inputs[0].text");
        }
        var (_, ner) = await HttpGet(host.Client, "/v1/heads/ner");
        Assert.Equal(0, (int)ner["details"]!["serving_errors"]!);
    }

    private static async Task<(int, JsonNode)> HttpGet(HttpClient client, string path) => await Support.HttpJson.GetAsync(client, path);

    [Fact]
    public async Task Unknown_request_parameters_are_400_naming_them_with_a_suggestion()
    {
        await using var host = await NerHost.StartAsync();
        var (status, body) = await host.PostAsync("/v1/heads/ner/predict", new { inputs = new[] { "john went to paris" }, parameters = new { aggregaton = "simple" } });
        Assert.True(status == 400, body.ToJsonString());
        Assert.Equal("parameters.aggregaton", (string)body["error"]!["field"]!);
        Assert.Equal("unknown parameter 'aggregaton' (did you mean 'aggregation'?); head ner reads aggregation, ignore_labels", (string)body["error"]!["message"]!);
        // Several heads: what any of them reads is accepted.
        (status, body) = await host.PostAsync("/v1/predict", new { heads = new[] { "ner", "sentiment" }, inputs = new[] { "a" }, parameters = new { top_k = 1, aggregation = "simple" } });
        Assert.True(status == 200, body.ToJsonString());
        (status, body) = await host.PostAsync("/v1/predict", new { heads = new[] { "ner", "sentiment" }, inputs = new[] { "a" }, parameters = new { topk = 1 } });
        Assert.Equal((400, "parameters.topk"), (status, (string)body["error"]!["field"]!));
        Assert.Contains("did you mean 'top_k'?", (string)body["error"]!["message"]!);
    }

    [Theory]
    [InlineData("application/json; charset=\"utf-8\"")]
    [InlineData("application/json; charset=\"UTF-8\"")]
    [InlineData("application/json;charset=utf8")]
    public async Task A_quoted_charset_is_accepted(string contentType)
    {
        await using var server = await ApiTestServer.StartAsync();
        using var response = await server.Client.PostAsync("/v1/heads/sentiment/predict", Json(Encoding.UTF8.GetBytes("""{"inputs": ["héllo"]}"""), contentType));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var latin = await server.Client.PostAsync("/v1/heads/sentiment/predict", Json(Encoding.UTF8.GetBytes("""{"inputs": ["a"]}"""), "application/json; charset=\"latin1\""));
        await ApiTestServer.AssertErrorAsync(latin, HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
    }
}
