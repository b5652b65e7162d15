using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Core.Bert;
using BertHost.Tests.Support;
using BertHost.Core.Backends;

namespace BertHost.Tests.Integration;

public sealed class HostIntegrationTests(HostFixture host) : IClassFixture<HostFixture>
{
    private static double[] Probabilities(JsonNode output, IEnumerable<string> labels) =>
        labels.Select(l => output["scores"]![l]!.GetValue<double>()).ToArray();

    [Fact]
    public async Task Heads_report_their_state_and_a_failed_plugin_does_not_take_the_host_down()
    {
        var (status, body) = await host.GetAsync("/v1/heads");
        Assert.Equal(200, status);
        var heads = body["heads"]!.AsArray().ToDictionary(h => h!["name"]!.GetValue<string>(), h => h!);
        Assert.Equal(["sentiment", "topic", "imported", "echo", "broken", "flaky"], heads.Keys);
        Assert.Equal("failed", heads["broken"]["state"]!.GetValue<string>());
        Assert.Contains("failed to create head 'broken'", heads["broken"]["error"]!.GetValue<string>());
        Assert.All(heads.Where(h => h.Key != "broken"), h => Assert.Equal("ready", h.Value["state"]!.GetValue<string>()));
        Assert.Equal(["negative", "neutral", "positive"], heads["imported"]["labels"]!.AsArray().Select(l => l!.GetValue<string>()));

        var (readyStatus, ready) = await host.GetAsync("/readyz");
        Assert.Equal(200, readyStatus);
        Assert.Contains(ready["heads"]!.AsArray(), h => h!["name"]!.GetValue<string>() == "broken" && h["state"]!.GetValue<string>() == "failed");

        var (brokenStatus, error) = await host.PostAsync("/v1/heads/broken/predict", new { inputs = new[] { new { text = "x" } } });
        Assert.Equal(503, brokenStatus);
        Assert.Equal("unavailable", error["error"]!["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_imported_hf_sequence_classifier_gives_the_reference_probabilities_over_http()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("models", "tiny-bert-seqcls.expected.json")));
        var labels = doc.RootElement.GetProperty("labels").EnumerateArray().Select(l => l.GetString()!).ToArray();
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray().ToArray();
        var inputs = cases.Select(c => c.TryGetProperty("text_pair", out var pair)
            ? (object)new { text = c.GetProperty("text").GetString(), text_pair = pair.GetString() }
            : new { text = c.GetProperty("text").GetString() }).ToArray();

        var (status, body) = await host.PostAsync("/v1/heads/imported/predict", new { inputs });
        Assert.Equal(200, status);
        var outputs = body["outputs"]!.AsArray();
        Assert.Equal(cases.Length, outputs.Count);
        for (var i = 0; i < cases.Length; i++)
        {
            var expected = cases[i].GetProperty("probabilities").EnumerateArray().Select(p => p.GetDouble()).ToArray();
            var actual = Probabilities(outputs[i]!, labels);
            Assert.InRange(expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max(), 0, 1e-4);
            Assert.Equal(cases[i].GetProperty("label").GetString(), outputs[i]!["label"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task A_multi_head_request_runs_the_body_once_per_input()
    {
        var passesBefore = host.Engine.Scheduler.BodyPasses;
        var rowsBefore = host.Engine.Scheduler.BodyRows;
        var (status, body) = await host.PostAsync("/v1/predict", new
        {
            heads = new[] { "sentiment", "topic", "imported", "echo" },
            inputs = new[] { new { text = "the old man went to the city with his dog" } },
        });
        Assert.Equal(200, status);
        var output = body["outputs"]!.AsArray().Single()!.AsObject();
        Assert.Equal(["sentiment", "topic", "imported", "echo"], output.Select(kv => kv.Key));
        Assert.Equal(1, host.Engine.Scheduler.BodyPasses - passesBefore);
        Assert.Equal(1, host.Engine.Scheduler.BodyRows - rowsBefore);

        // The same input through one head alone gives the same answer.
        var (_, alone) = await host.PostAsync("/v1/heads/topic/predict", new { inputs = new[] { new { text = "the old man went to the city with his dog" } } });
        Assert.Equal(alone["outputs"]![0]!.ToJsonString(), output["topic"]!.ToJsonString());
    }

    [Fact]
    public async Task Concurrent_requests_to_several_heads_match_unbatched_single_requests()
    {
        string[] texts = ["the dog", "she said no", "we will see what happens in the city next week", "he went to the city", "the old man"];
        string[] heads = ["sentiment", "topic", "imported"];
        var expected = new Dictionary<(string, string), string>();
        foreach (var head in heads)
            foreach (var text in texts)
                expected[(head, text)] = (await host.PostAsync($"/v1/heads/{head}/predict", new { inputs = new[] { new { text } } })).Body["outputs"]![0]!.ToJsonString();

        var requests = Enumerable.Range(0, 48).Select(async i =>
        {
            var head = heads[i % heads.Length];
            var text = texts[i % texts.Length];
            var (status, body) = await host.PostAsync($"/v1/heads/{head}/predict", new { inputs = new[] { new { text }, new { text = texts[(i + 1) % texts.Length] } } });
            Assert.Equal(200, status);
            return (head, text, next: texts[(i + 1) % texts.Length], outputs: body["outputs"]!.AsArray());
        });
        foreach (var (head, text, next, outputs) in await Task.WhenAll(requests))
        {
            AssertClose(expected[(head, text)], outputs[0]!.ToJsonString());
            AssertClose(expected[(head, next)], outputs[1]!.ToJsonString());
        }
    }

    // Batched and single passes differ only by float rounding in differently shaped matrix products.
    private static void AssertClose(string expected, string actual)
    {
        var e = JsonNode.Parse(expected)!["scores"]!.AsObject();
        var a = JsonNode.Parse(actual)!["scores"]!.AsObject();
        Assert.Equal(e.Select(kv => kv.Key), a.Select(kv => kv.Key));
        foreach (var (label, value) in e) Assert.InRange(Math.Abs(value!.GetValue<double>() - a[label]!.GetValue<double>()), 0, 1e-6);
    }

    [Fact]
    public async Task A_head_that_throws_while_serving_fails_its_requests_and_the_others_keep_serving()
    {
        var (status, error) = await host.PostAsync("/v1/heads/flaky/predict", new { inputs = new[] { new { text = "the dog" } } });
        Assert.Equal(503, status);
        Assert.Contains("head 'flaky' failed while serving", error["error"]!["message"]!.GetValue<string>());

        var (mixedStatus, mixed) = await host.PostAsync("/v1/predict", new { heads = new[] { "sentiment", "flaky" }, inputs = new[] { new { text = "the dog" } } });
        Assert.Equal(503, mixedStatus);
        Assert.Contains("flaky", mixed["error"]!["message"]!.GetValue<string>());

        var (okStatus, ok) = await host.PostAsync("/v1/heads/sentiment/predict", new { inputs = new[] { new { text = "the dog" } } });
        Assert.Equal(200, okStatus);
        Assert.NotNull(ok["outputs"]![0]!["label"]);

        var (_, details) = await host.GetAsync("/v1/heads/flaky");
        Assert.True(details["details"]!["serving_errors"]!.GetValue<long>() >= 1);
    }

    [Theory]
    [InlineData("/v1/heads/sentiment/predict", "{\"inputs\": [{\"text\": 3}]}", 422, "invalid_input", "inputs[0].text")]
    [InlineData("/v1/heads/sentiment/predict", "{\"inputs\": [{}]}", 422, "invalid_input", "inputs[0].text")]
    [InlineData("/v1/heads/sentiment/predict", "{\"inputs\": []}", 400, "bad_request", "inputs")]
    [InlineData("/v1/heads/sentiment/predict", "{\"inputs\": [", 400, "bad_request", null)]
    [InlineData("/v1/heads/nope/predict", "{\"inputs\": [\"x\"]}", 404, "unknown_head", null)]
    [InlineData("/v1/predict", "{\"heads\": [\"sentiment\", \"nope\"], \"inputs\": [\"x\"]}", 404, "unknown_head", "heads[1]")]
    public async Task Bad_requests_get_a_json_error_naming_the_field(string path, string json, int status, string code, string? field)
    {
        using var response = await host.Client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.Equal(status, (int)response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal(code, error["code"]!.GetValue<string>());
        Assert.Equal(field, error["field"]?.GetValue<string>());
        Assert.False(string.IsNullOrWhiteSpace(error["message"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Too_many_inputs_and_a_10_mb_body_are_refused_with_413()
    {
        var (status, error) = await host.PostAsync("/v1/heads/sentiment/predict", new { inputs = Enumerable.Repeat(new { text = "x" }, 33).ToArray() });
        Assert.Equal(413, status);
        Assert.Equal("inputs", error["error"]!["field"]!.GetValue<string>());

        var big = "{\"inputs\": [{\"text\": \"" + new string('a', 10 * 1024 * 1024) + "\"}]}";
        using var response = await host.Client.PostAsync("/v1/heads/sentiment/predict", new StringContent(big, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("payload_too_large", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());

        // Still serving.
        var (okStatus, _) = await host.PostAsync("/v1/heads/sentiment/predict", new { inputs = new[] { "the dog" } });
        Assert.Equal(200, okStatus);
    }

    [Fact]
    public async Task Long_inputs_are_truncated_to_the_body_max_length_not_refused()
    {
        var longText = string.Join(' ', Enumerable.Repeat("the old man went to the city", 40));
        var (status, body) = await host.PostAsync("/v1/heads/echo/predict", new { inputs = new[] { new { text = longText } } });
        Assert.Equal(200, status);
        Assert.Equal(64, body["outputs"]![0]!["tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Metrics_count_requests_batches_and_per_head_time()
    {
        await host.PostAsync("/v1/heads/sentiment/predict", new { inputs = new[] { "the dog", "she said no" } });
        using var response = await host.Client.GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType!.MediaType);
        Assert.Contains("berthost_requests_total{route=\"/v1/heads/{name}/predict\",head=\"sentiment\"}", text);
        Assert.Matches(@"berthost_batch_rows_count \d+", text);
        Assert.Matches("berthost_head_seconds_count\\{head=\"sentiment\"\\} \\d+", text);
        Assert.Contains("berthost_heads{state=\"failed\"} 1", text);
    }

    [Fact]
    public async Task Body_and_openapi_describe_the_deployment()
    {
        var (status, body) = await host.GetAsync("/v1/body");
        Assert.Equal(200, status);
        Assert.Equal(host.Engine.Body.Fingerprint, body["fingerprint"]!.GetValue<string>());
        Assert.Equal(64, body["max_sequence_length"]!.GetValue<int>());
        // Served on the CPU in float32: every Linear weight has a oneDNN-layout copy (body.prepack_weights defaults on).
        var linearBytes = host.Engine.Body.Model.modules().OfType<TorchSharp.Modules.Linear>().Sum(l => l.weight!.NumberOfElements * 4);
        Assert.Equal(linearBytes, body["prepacked_weights_bytes"]!.GetValue<long>());
        var maxRows = host.Engine.Body.Prepacked!.MaxRows;
        Assert.Equal(maxRows == long.MaxValue ? null : maxRows, body["prepacked_max_rows"]?.GetValue<long>());
        // Head size 8: the kernel's 8-float (AVX2) variant where the CPU has it.
        Assert.Equal(CpuAttention.InstructionSet(8) ?? "sdpa", body["attention_core"]!.GetValue<string>());
        var (openStatus, openapi) = await host.GetAsync("/openapi.json");
        Assert.Equal(200, openStatus);
        Assert.NotNull(openapi["paths"]!["/v1/predict"]);
    }
}
