using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using BertHost.Api;
using BertHost.Core.Config;
using BertHost.Core.Jobs;
using BertHost.Tests.Api;
using BertHost.Tests.Jobs;
using BertHost.Tests.Support;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace BertHost.Tests.Security;

/// <summary>
/// Finding "no authentication, and jobs are always on; the Host header is not checked": API keys with scopes on every
/// route, non-loopback binds refused without keys, Host header allow-list, CORS off unless configured, audit lines.
/// </summary>
public sealed class AuthTests
{
    private const string PredictKey = "predict-key-0123456789abcdef";
    private const string TrainKey = "train-key-0123456789abcdef";
    private const string AdminKey = "admin-key-0123456789abcdef";

    private static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    internal static AuthSection Keys => new()
    {
        Keys =
        [
            new ApiKeySection { Id = "app", Sha256 = Hash(PredictKey), Scopes = [Scopes.Predict] },
            new ApiKeySection { Id = "ci", Sha256 = Hash(TrainKey), Scopes = [Scopes.Train] },
            new ApiKeySection { Id = "ops", Sha256 = Hash(AdminKey), Scopes = [Scopes.Admin] },
        ],
    };

    /// <summary>The scope every route needs; null = anonymous. A route missing here fails the test: a new route must say who may call it.</summary>
    private static readonly Dictionary<(string Method, string Pattern), string?> Expected = new()
    {
        [("GET", "/v1/heads")] = Scopes.Predict,
        [("GET", "/v1/heads/{name}")] = Scopes.Predict,
        [("POST", "/v1/heads/{name}/predict")] = Scopes.Predict,
        [("POST", "/v1/predict")] = Scopes.Predict,
        [("GET", "/v1/body")] = Scopes.Predict,
        [("GET", "/metrics")] = Scopes.Predict,
        [("POST", "/v1/jobs")] = Scopes.Train,
        [("GET", "/v1/jobs")] = Scopes.Train,
        [("GET", "/v1/jobs/{id}")] = Scopes.Train,
        [("DELETE", "/v1/jobs/{id}")] = Scopes.Train,
        [("POST", "/v1/jobs/{id}/promote")] = Scopes.Admin,
        [("POST", "/v1/embeddings")] = Scopes.Predict,
        [("POST", "/embed")] = Scopes.Predict,
        [("POST", "/rerank")] = Scopes.Predict,
        [("POST", "/tokenize")] = Scopes.Predict,
        [("GET", "/v2")] = Scopes.Predict,
        [("GET", "/v2/models/{name}")] = Scopes.Predict,
        [("GET", "/v2/models/{name}/ready")] = Scopes.Predict,
        [("POST", "/v2/models/{name}/infer")] = Scopes.Predict,
        [("GET", "/v2/health/live")] = null,
        [("GET", "/v2/health/ready")] = null,
        [("GET", "/healthz")] = null,
        [("GET", "/readyz")] = null,
        [("GET", "/openapi.json")] = null,
        [("GET", "/docs/{documentName?}")] = null,
        [("GET", "/docs/favicon.svg")] = null,
        [("GET", "/docs/scalar.aspnetcore.js")] = null,
        [("GET", "/docs/scalar.js")] = null,
    };

    /// <summary>
    /// The message of an auth error in the route's dialect: the host's own shape with its code, OpenAI's with the same
    /// code, TEI's and the Open Inference Protocol's (which carry no code) by their shape alone.
    /// </summary>
    private static async Task<string> AuthErrorAsync(HttpResponseMessage response, HttpStatusCode status, string code, string pattern)
    {
        if (!pattern.StartsWith("/v2") && pattern is not ("/v1/embeddings" or "/embed" or "/rerank" or "/tokenize"))
            return await ApiTestServer.AssertErrorAsync(response, status, code);
        Assert.Equal(status, response.StatusCode);
        var body = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
        switch (pattern)
        {
            case "/v1/embeddings":
                Assert.Equal(code, body["error"]!["code"]!.GetValue<string>());
                Assert.Equal(status == HttpStatusCode.Unauthorized ? "authentication_error" : "permission_error", body["error"]!["type"]!.GetValue<string>());
                return body["error"]!["message"]!.GetValue<string>();
            case "/embed" or "/rerank" or "/tokenize":
                Assert.Equal(["error", "error_type"], body.Select(p => p.Key));
                return body["error"]!.GetValue<string>();
            default:
                Assert.Equal(["error"], body.Select(p => p.Key));
                return body["error"]!.GetValue<string>();
        }
    }

    private static HttpRequestMessage Request(string method, string pattern, string? key, bool viaHeader = false)
    {
        var path = pattern.Replace("{name}", "sentiment").Replace("{id}", "nope").Replace("{documentName?}", "");
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method == "POST") request.Content = new StringContent(path == "/v1/predict" ? """{"heads": ["sentiment"], "inputs": ["a"]}""" : """{"inputs": ["a"]}""", Encoding.UTF8, "application/json");
        if (key is not null)
        {
            if (viaHeader) request.Headers.Add("X-Api-Key", key);
            else request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }
        return request;
    }

    [Fact]
    public async Task Every_route_asks_for_its_scope_401_without_a_key_403_with_a_key_lacking_it()
    {
        await using var server = await ApiTestServer.StartAsync(o => o with { Auth = Keys });
        var mapped = server.App.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .SelectMany(e => e.Metadata.GetMetadata<HttpMethodMetadata>()!.HttpMethods.Select(m => (Method: m, Pattern: e.RoutePattern.RawText!, Endpoint: e)))
            .ToList();
        Assert.Equal(Expected.Keys.Order(), mapped.Select(m => (m.Method, m.Pattern)).Order());
        var keys = new Dictionary<string, string> { [Scopes.Predict] = PredictKey, [Scopes.Train] = TrainKey, [Scopes.Admin] = AdminKey };
        foreach (var (method, pattern, endpoint) in mapped)
        {
            var scope = Expected[(method, pattern)];
            // What the endpoint itself declares: a scope policy, or explicitly anonymous.
            if (scope is null) Assert.NotNull(endpoint.Metadata.GetMetadata<IAllowAnonymous>());
            else Assert.Contains(endpoint.Metadata.GetOrderedMetadata<IAuthorizeData>(), a => a.Policy == scope);

            using var anonymous = await server.Client.SendAsync(Request(method, pattern, null));
            if (scope is null)
            {
                Assert.True(anonymous.StatusCode == HttpStatusCode.OK, $"{method} {pattern}: {anonymous.StatusCode}");
                continue;
            }
            Assert.Equal("this route needs an API key: send Authorization: Bearer KEY or X-Api-Key: KEY",
                await AuthErrorAsync(anonymous, HttpStatusCode.Unauthorized, "unauthorized", pattern));
            Assert.Equal("Bearer", anonymous.Headers.WwwAuthenticate.Single().Scheme);
            using var wrong = await server.Client.SendAsync(Request(method, pattern, "not-a-key-of-this-host-at-all"));
            Assert.Equal("the API key is not valid", await AuthErrorAsync(wrong, HttpStatusCode.Unauthorized, "unauthorized", pattern));

            foreach (var (held, key) in keys)
            {
                var allowed = held == scope || held == Scopes.Admin;
                using var response = await server.Client.SendAsync(Request(method, pattern, key, viaHeader: held == Scopes.Train));
                if (allowed)
                {
                    Assert.True(response.StatusCode is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), $"{method} {pattern} with {held}: {response.StatusCode}");
                }
                else
                {
                    var message = await AuthErrorAsync(response, HttpStatusCode.Forbidden, "forbidden", pattern);
                    Assert.EndsWith($"lacks the {scope} scope this route needs", message);
                }
            }
        }
        // Jobs are off on this host (no runner): a key that may train is told so.
        using var disabled = await server.Client.SendAsync(Request("GET", "/v1/jobs", TrainKey));
        Assert.Contains("jobs section needs enabled: true", await ApiTestServer.AssertErrorAsync(disabled, HttpStatusCode.NotFound, "jobs_disabled"));
    }

    [Fact]
    public async Task An_anonymous_host_gets_only_the_anonymous_scopes_and_unknown_routes_need_a_key_too()
    {
        await using var server = await ApiTestServer.StartAsync(o => o with { Auth = Keys with { AllowAnonymous = true } });
        using var predict = await server.Client.SendAsync(Request("POST", "/v1/heads/{name}/predict", null));
        Assert.Equal(HttpStatusCode.OK, predict.StatusCode);
        using var jobs = await server.Client.SendAsync(Request("GET", "/v1/jobs", null));
        Assert.Equal("a request without a key lacks the train scope this route needs", await ApiTestServer.AssertErrorAsync(jobs, HttpStatusCode.Forbidden, "forbidden"));

        await using var keyed = await ApiTestServer.StartAsync(o => o with { Auth = Keys });
        using var unknown = await keyed.Client.GetAsync("/etc/passwd");
        await ApiTestServer.AssertErrorAsync(unknown, HttpStatusCode.Unauthorized, "unauthorized");
    }

    [Theory]
    [InlineData("http://0.0.0.0:0")]
    [InlineData("http://127.0.0.1:0;http://[::]:0")]
    [InlineData("http://*:0")]
    [InlineData("http://192.168.1.20:0")]
    public void A_host_reachable_from_other_machines_refuses_to_start_without_keys_unless_anonymous_access_is_explicit(string urls)
    {
        var e = Assert.Throws<BindRefusedException>(() => ApiServer.Build(new ApiOptions { Urls = urls }, new FakeEngine(), new()));
        Assert.Contains("which other machines can reach, but the deployment has no auth section", e.Message);
        Assert.Throws<BindRefusedException>(() => ApiServer.Build(new ApiOptions { Urls = urls, Auth = new AuthSection() }, new FakeEngine(), new()));
        Assert.Null(BindAddresses.Problem(urls, Keys));
        Assert.Null(BindAddresses.Problem(urls, new AuthSection { AllowAnonymous = true }));
        Assert.Null(BindAddresses.Problem("http://127.0.0.1:5080;http://localhost:5081;http://[::1]:5082", null));
    }

    [Fact]
    public async Task Serve_and_validate_refuse_a_non_loopback_address_without_auth()
    {
        using var folder = new TempFolder();
        var config = Path.Combine(folder.Path, "open.yaml");
        File.WriteAllText(config, $"""
            host: {"{"} urls: "http://0.0.0.0:0" {"}"}
            body: {"{"} checkpoint: {ReferenceOutputs.ModelFolder("tiny-bert")} {"}"}
            """);
        var validate = await CliRunner.RunAsync("validate", "--config", config);
        Assert.Equal(1, validate.ExitCode);
        Assert.Contains("host.urls: binds 0.0.0.0 (every interface), which other machines can reach", validate.Error);
        var serve = await CliRunner.RunAsync("serve", "--config", config);
        Assert.Equal(1, serve.ExitCode);
        Assert.Contains("host.urls: binds 0.0.0.0 (every interface), which other machines can reach", serve.Error);
        // The same deployment bound to loopback by --urls serves nothing else differently: it is refused only for the open address.
        var loopback = Path.Combine(folder.Path, "loopback.yaml");
        File.WriteAllText(loopback, File.ReadAllText(config).Replace("0.0.0.0", "127.0.0.1"));
        Assert.Equal(0, (await CliRunner.RunAsync("validate", "--config", loopback)).ExitCode);
        var open = await CliRunner.RunAsync("serve", "--config", loopback, "--urls", "http://0.0.0.0:0");
        Assert.Equal(1, open.ExitCode);
        Assert.Contains("refusing to serve", open.Error);
    }

    [Theory]
    [InlineData("evil.example", HttpStatusCode.BadRequest)]
    [InlineData("attacker.example:5080", HttpStatusCode.BadRequest)]
    [InlineData("localhost", HttpStatusCode.OK)]
    [InlineData("127.0.0.1", HttpStatusCode.OK)]
    [InlineData("[::1]:8080", HttpStatusCode.OK)]
    public async Task The_host_header_must_name_this_host_so_dns_rebinding_cannot_reach_it(string host, HttpStatusCode status)
    {
        await using var server = await ApiTestServer.StartAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/heads");
        request.Headers.Host = host;
        using var response = await server.Client.SendAsync(request);
        if (status == HttpStatusCode.OK) Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        else await ApiTestServer.AssertErrorAsync(response, status, "host_not_allowed");
    }

    [Fact]
    public async Task Allowed_hosts_and_cors_origins_come_from_the_deployment_and_cors_is_off_otherwise()
    {
        await using (var plain = await ApiTestServer.StartAsync())
        {
            using var preflight = Preflight("https://app.example");
            using var response = await plain.Client.SendAsync(preflight);
            Assert.False(response.Headers.Contains("Access-Control-Allow-Origin"));
        }
        await using var server = await ApiTestServer.StartAsync(o => o with { AllowedHosts = ["berthost.internal"], CorsOrigins = ["https://app.example"] });
        using var named = new HttpRequestMessage(HttpMethod.Get, "/healthz");
        named.Headers.Host = "berthost.internal";
        Assert.Equal(HttpStatusCode.OK, (await server.Client.SendAsync(named)).StatusCode);
        using var local = new HttpRequestMessage(HttpMethod.Get, "/healthz");
        local.Headers.Host = "localhost";
        Assert.Equal(HttpStatusCode.BadRequest, (await server.Client.SendAsync(local)).StatusCode);
        using var allowed = Preflight("https://app.example", "berthost.internal");
        using var yes = await server.Client.SendAsync(allowed);
        Assert.Equal("https://app.example", yes.Headers.GetValues("Access-Control-Allow-Origin").Single());
        using var other = Preflight("https://evil.example", "berthost.internal");
        using var no = await server.Client.SendAsync(other);
        Assert.False(no.Headers.Contains("Access-Control-Allow-Origin"));
    }

    private static HttpRequestMessage Preflight(string origin, string? host = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Options, "/v1/heads/sentiment/predict");
        request.Headers.Add("Origin", origin);
        request.Headers.Add("Access-Control-Request-Method", "POST");
        if (host is not null) request.Headers.Host = host;
        return request;
    }

    [Fact]
    public async Task Training_needs_the_train_scope_promoting_the_admin_scope_and_the_audit_log_says_which_key_did_what()
    {
        var auth = $$"""
            auth:
              keys:
                - { id: ci, sha256: {{Hash(TrainKey)}}, scopes: [train] }
                - { id: ops, key: {{AdminKey}}, scopes: [admin] }
            """;
        await using var host = await JobsHost.StartAsync("promote: manual", sections: auth);
        var data = host.WriteData(8, seed: 6);
        host.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", TrainKey);

        var (forbidden, refusal) = await host.PostAsync("/v1/jobs", new { head = "sentiment", train = data, epochs = 1, promote = true });
        Assert.True(forbidden == 403, refusal.ToJsonString());
        Assert.Equal("promote", (string)refusal["error"]!["field"]!);

        var id = await host.SubmitAsync(new { head = "sentiment", train = data, epochs = 1 });
        var job = await host.WaitForStateAsync(id, JobStates.Succeeded);
        Assert.Equal("ci", (string)job["submitted_by"]!);
        Assert.False((bool)job["promoted"]!);
        Assert.Equal(403, (await host.PostAsync($"/v1/jobs/{id}/promote", new { })).Status);

        host.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        var (promoted, record) = await host.PostAsync($"/v1/jobs/{id}/promote", new { });
        Assert.True(promoted == 200, record.ToJsonString());
        Assert.Equal("ops", (string)record["promoted_by"]!);

        var audit = host.Logs.Entries.Where(e => e.Category == JobRunner.AuditCategory).Select(e => e.Message).ToList();
        Assert.Contains(audit, m => m.StartsWith($"key ci submitted job {id}: train head of sentiment on train '{data}' (data_root, sha256 ", StringComparison.Ordinal));
        Assert.Contains($"key ops promoted job {id}: head sentiment now serves its output", audit);
    }
}
