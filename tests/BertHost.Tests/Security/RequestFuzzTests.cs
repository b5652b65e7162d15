using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Tests.Api;
using BertHost.Tests.Jobs;
using CsCheck;

namespace BertHost.Tests.Security;

/// <summary>
/// Property-based fuzzing of the request readers (CsCheck, fixed seed, bounded iterations, one thread): whatever bytes
/// arrive, the answer is a JSON error of the 4xx family (or a success) — never a 5xx, a hang or a stack trace — and no
/// answer quotes a server file.
/// </summary>
public sealed class RequestFuzzTests
{
    /// <summary>A fixed seed: the same requests on every run (CsCheck prints the seed of a failing case to replay it).</summary>
    private static readonly string Seed = new PCG(7, 20261124).ToString();

    private static readonly Gen<string> Keys = Gen.OneOf("inputs", "parameters", "heads", "text", "text_pair", "top_k", "aggregation",
        "head", "train", "eval", "mode", "epochs", "tasks", "kind", "corpus", "from", "format", "promote", "content", "name", "", "inputs ", "\u00e9");

    private static readonly Gen<string> Scalars = Gen.OneOf(
        Gen.OneOf("null", "true", "false", "0", "-1", "3", "1e309", "-0.0", "2.5", "\"\"", "\"sentiment\"", "\"ner\"", "\"multitask\"", "\"pretrain\"",
            "\"../../../etc/passwd\"", "\"/etc/shadow\"", "\"/proc/self/environ\"", "\"/dev/zero\"", "\"\\ud800\"", "\"\\u0000\"", "\"served\"", "\"small.txt\""),
        Gen.String[0, 12].Select(s => JsonSerializer.Serialize(s)),
        Gen.Int.Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    private static readonly Gen<string> Arrays = Scalars.Array[0, 4].Select(items => "[" + string.Join(",", items) + "]");

    private static readonly Gen<string> Objects = Gen.Select(Keys, Gen.OneOf(Scalars, Arrays)).Array[0, 4]
        .Select(pairs => "{" + string.Join(",", pairs.Select(p => $"{JsonSerializer.Serialize(p.Item1)}:{p.Item2}")) + "}");

    private static readonly Gen<string> Values = Gen.OneOf(Scalars, Arrays, Objects, Objects.Array[0, 3].Select(o => "[" + string.Join(",", o) + "]"));

    /// <summary>A request body: a JSON object of likely field names, then maybe mangled at the byte level (cut, a byte replaced, bytes inserted).</summary>
    private static readonly Gen<byte[]> Bodies = Gen.Select(Gen.Select(Keys, Values).Array[0, 5], Gen.Int[0, 4], Gen.Int[0, 10_000], Gen.Byte)
        .Select(t =>
        {
            var (fields, mutation, at, value) = t;
            var bytes = Encoding.UTF8.GetBytes("{" + string.Join(",", fields.Select(f => $"{JsonSerializer.Serialize(f.Item1)}:{f.Item2}")) + "}");
            if (bytes.Length == 0) return bytes;
            var i = at % bytes.Length;
            return mutation switch
            {
                1 => bytes[..i],
                2 => [.. bytes[..i], value, .. bytes[(i + 1)..]],
                3 => [.. bytes[..i], 0xFF, 0xC3, .. bytes[i..]],
                _ => bytes,
            };
        });

    private static void AssertClientError(HttpResponseMessage response, string body, params int[] successes)
    {
        var status = (int)response.StatusCode;
        Assert.True(status < 500 && (status >= 400 || successes.Contains(status)), $"{status}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var json = JsonNode.Parse(body)!;
        if (status >= 400) Assert.False(string.IsNullOrWhiteSpace((string?)json["error"]?["message"]), body);
        Assert.DoesNotContain("root:x:", body);
        Assert.DoesNotContain("   at ", body);
    }

    [Fact]
    public async Task Predict_requests_of_any_shape_get_a_json_answer_below_500()
    {
        await using var server = await ApiTestServer.StartAsync();
        var routes = new[] { "/v1/heads/sentiment/predict", "/v1/predict", "/v1/heads/broken/predict" };
        Gen.Select(Bodies, Gen.Int[0, routes.Length - 1]).Sample(t =>
        {
            var (bytes, route) = t;
            using var content = new ByteArrayContent(bytes);
            content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
            using var response = server.Client.PostAsync(routes[route], content).GetAwaiter().GetResult();
            var body = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            // The failed head answers 503 without Retry-After: that is the one 5xx a request may get here.
            if ((int)response.StatusCode == 503) Assert.Equal("unavailable", (string)JsonNode.Parse(body)!["error"]!["code"]!);
            else AssertClientError(response, body, 200);
        }, seed: Seed, iter: 400, threads: 1, time: 20);
    }

    [Fact]
    public async Task Job_submissions_of_any_shape_get_a_json_answer_below_500_and_read_no_file_outside_the_roots()
    {
        await using var host = await JobsHost.StartAsync("promote: manual, body_swap: manual");
        Bodies.Sample(bytes =>
        {
            using var content = new ByteArrayContent(bytes);
            content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
            using var response = host.Client.PostAsync("/v1/jobs", content).GetAwaiter().GetResult();
            var body = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
            AssertClientError(response, body, 202);
            // A submission that happened to be valid is cancelled at once: this test is about reading requests.
            if (response.StatusCode == HttpStatusCode.Accepted) host.DeleteAsync($"/v1/jobs/{(string)JsonNode.Parse(body)!["id"]!}").GetAwaiter().GetResult();
        }, seed: Seed, iter: 250, threads: 1, time: 20);
    }
}
