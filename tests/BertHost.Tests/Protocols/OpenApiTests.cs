using System.Net;
using System.Text.Json;
using BertHost.Api;
using BertHost.Core.Config;
using BertHost.Tests.Api;
using BertHost.Tests.Security;

namespace BertHost.Tests.Protocols;

/// <summary>The generated OpenAPI document's security, protocol schemas and error shapes, and the /docs page over it.</summary>
public sealed class OpenApiTests
{
    [Fact]
    public async Task Every_operation_names_its_scope_or_none_and_protocol_routes_document_their_own_error_shapes()
    {
        await using var server = await ApiTestServer.StartAsync(o => o with { Auth = AuthTests.Keys });
        using var response = await server.Client.GetAsync("/openapi.json");   // anonymous, even with keys configured
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var doc = await ApiTestServer.JsonOf(response);
        var schemes = doc.GetProperty("components").GetProperty("securitySchemes");
        Assert.Equal("bearer", schemes.GetProperty("bearer").GetProperty("scheme").GetString());
        Assert.Equal("X-Api-Key", schemes.GetProperty("apiKey").GetProperty("name").GetString());

        var paths = doc.GetProperty("paths");
        string[] Scopes(string path, string method) =>
            paths.GetProperty(path).GetProperty(method).GetProperty("security").EnumerateArray()
                .SelectMany(r => r.EnumerateObject().SelectMany(p => p.Value.EnumerateArray().Select(s => $"{p.Name}:{s.GetString()}"))).ToArray();
        Assert.Equal(["bearer:predict", "apiKey:predict"], Scopes("/v1/embeddings", "post"));
        Assert.Equal(["bearer:admin", "apiKey:admin"], Scopes("/v1/jobs/{id}/promote", "post"));
        Assert.Empty(Scopes("/v2/health/ready", "get"));
        Assert.Empty(Scopes("/readyz", "get"));

        string ErrorSchema(string path, string method, string status) =>
            paths.GetProperty(path).GetProperty(method).GetProperty("responses").GetProperty(status)
                .GetProperty("content").GetProperty("application/json").GetProperty("schema").GetProperty("$ref").GetString()!.Split('/')[^1];
        Assert.Equal("OpenAiError", ErrorSchema("/v1/embeddings", "post", "400"));
        Assert.Equal("TeiError", ErrorSchema("/rerank", "post", "413"));
        Assert.Equal("KServeError", ErrorSchema("/v2/models/{name}/infer", "post", "404"));
        Assert.Equal("Error", ErrorSchema("/v1/predict", "post", "422"));

        var body = paths.GetProperty("/v2/models/{name}/infer").GetProperty("post").GetProperty("requestBody").GetProperty("content")
            .GetProperty("application/json").GetProperty("schema").GetProperty("$ref").GetString();
        Assert.Equal("#/components/schemas/InferenceRequest", body);
        var name = paths.GetProperty("/v2/models/{name}/infer").GetProperty("post").GetProperty("parameters")[0];
        Assert.Equal(("name", "path", true), (name.GetProperty("name").GetString(), name.GetProperty("in").GetString(), name.GetProperty("required").GetBoolean()));
        var jobs = paths.GetProperty("/v1/jobs").GetProperty("post").GetProperty("requestBody").GetProperty("content");
        Assert.True(jobs.TryGetProperty("multipart/form-data", out _));
        Assert.True(jobs.TryGetProperty("application/json", out _));
        var rerank = doc.GetProperty("components").GetProperty("schemas").GetProperty("RerankRequest").GetProperty("properties");
        Assert.Equal(["query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction", "model"], rerank.EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public async Task Docs_serves_the_interactive_page_over_the_document_without_a_key()
    {
        await using var server = await ApiTestServer.StartAsync(o => o with { Auth = AuthTests.Keys });
        using var page = await server.Client.GetAsync("/docs/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var html = await page.Content.ReadAsStringAsync();
        // The page resolves the document against the path it is served under (/docs/): openapi.json at the root.
        Assert.Contains("\"url\":\"openapi.json\"", html);
        Assert.Contains("'%2Fdocs%2F'", html);
        using var script = await server.Client.GetAsync("/docs/scalar.js");   // served from the package, no CDN
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
    }
}
