using BertHost.Tests.Support;
using System.Net;
using System.Text.Json.Nodes;
using BertHost.Tests.Api;
using static BertHost.Tests.Heads.TokenClassification.TokenClassificationSupport;
using static BertHost.Tests.Plugins.HeadTestSupport;

namespace BertHost.Tests.Security;

/// <summary>
/// Finding "work per request is unbounded for token classification": limits in tokens counted after tokenization (every
/// window of a long text), linear decoding, a bounded response, a per-request timeout.
/// </summary>
public sealed class BoundedWorkTests
{
    /// <summary>A text of <paramref name="tokens"/> content tokens for tiny-bert's tokenizer ("the" is one).</summary>
    private static string Text(int tokens)
    {
        var text = string.Join(' ', Enumerable.Repeat("the", tokens));
        var encoded = TinyBert.Tokenizer.Encode(text, null, new Abstractions.Text.EncodeOptions { Truncation = Abstractions.Text.TruncationStrategy.DoNotTruncate })[0];
        Assert.Equal(tokens + 2, encoded.Length);
        return text;
    }

    [Fact]
    public async Task Token_limits_count_every_window_per_input_per_request_and_in_the_queue()
    {
        await using var host = await NerHost.StartAsync();
        // (Every label ignored: the fresh head's entities would not fit the small response limit of this host.)
        var (okStatus, ok) = await host.PostAsync("/v1/heads/ner/predict", new { inputs = new[] { Text(300) }, parameters = new { ignore_labels = Ner } });
        Assert.True(okStatus == 200, ok.ToJsonString());

        // 560 content tokens are 13 windows of up to 64 tokens (stride 16): more than 600 tokens for the body to run.
        var (status, body) = await host.PostAsync("/v1/heads/ner/predict", new { inputs = new[] { "x", Text(560) } });
        Assert.True(status == 413, body.ToJsonString());
        Assert.Equal("inputs[1]", (string)body["error"]!["field"]!);
        Assert.Matches(@"^inputs\[1\] is \d+ tokens after tokenization \(\d+ sequences\); at most 600 per input \(host\.max_input_tokens\)$", (string)body["error"]!["message"]!);

        (status, body) = await host.PostAsync("/v1/heads/ner/predict", new { inputs = new[] { Text(400), Text(400), Text(400) } });
        Assert.True(status == 413, body.ToJsonString());
        Assert.Equal("inputs", (string)body["error"]!["field"]!);
        Assert.Contains("at most 1000 per request (host.max_request_tokens)", (string)body["error"]!["message"]!);

        // A request every head's sequences of which come to more than the queue holds can never be served: 413, not 429.
        (status, body) = await host.PostAsync("/v1/predict", new { heads = new[] { "ner", "sentiment" }, inputs = new[] { Text(300), Text(300) } });
        Assert.True(status == 413, body.ToJsonString());
        Assert.Contains("(batching.max_queued_tokens)", (string)body["error"]!["message"]!);
        Assert.Equal(0, host.Engine.Scheduler.InFlightTokens);
    }

    [Fact]
    public async Task A_response_over_the_limit_is_refused_not_sent()
    {
        await using var host = await NerHost.StartAsync();
        var (status, body) = await host.PostAsync("/v1/heads/ner/predict", new { inputs = new[] { Text(400) }, parameters = new { ignore_labels = Array.Empty<string>() } });
        Assert.True(status == 413, body.ToJsonString());
        Assert.StartsWith("the response would be larger than 20000 bytes (host.max_response_bytes)", (string)body["error"]!["message"]!);
        // A shorter text's entries fit.
        Assert.Equal(200, (await host.PostAsync("/v1/heads/ner/predict", new { inputs = new[] { Text(20) }, parameters = new { ignore_labels = Array.Empty<string>() } })).Status);
    }

    [Fact]
    public void Choosing_which_window_predicts_each_token_is_linear_in_the_tokens()
    {
        using var head = FreshNer();
        long Visits(int words, out int tokens)
        {
            var features = head.Encode(Json(new JsonObject { ["text"] = Text(words) }.ToJsonString()), NoParameters);
            dynamic windows = ((dynamic)features.State!).Windows;
            tokens = (int)windows.Count;
            Assert.True(features.Sequences.Count > 10);
            return (long)windows.Visits;
        }
        var small = Visits(2_000, out var smallTokens);
        var large = Visits(8_000, out var largeTokens);
        Assert.Equal(4.0, (double)largeTokens / smallTokens, 2);
        // Each token looks only at the windows that hold it (at most 2 here: 64-token windows, stride 16), so the work
        // grows as the text does; the former search through every window grew with its square (16x for 4x the text).
        Assert.True(small <= 2L * smallTokens, $"{small} visits for {smallTokens} tokens");
        Assert.True(large <= 2L * largeTokens, $"{large} visits for {largeTokens} tokens");
        Assert.InRange((double)large / small, 3.5, 4.5);
    }

    [Fact]
    public async Task A_request_running_past_the_timeout_is_cancelled_and_answered_504()
    {
        await using var server = await ApiTestServer.StartAsync(o => o with { RequestTimeout = TimeSpan.FromMilliseconds(300) });
        server.Engine.Delay = TimeSpan.FromSeconds(20);
        // The engine would answer 200 after 20 s: the 504 can only come from the request timeout.
        using var response = await Waits.Within(server.PostJsonAsync("/v1/heads/sentiment/predict", """{"inputs": ["slow"]}"""), "the timed-out request");
        Assert.Equal("the request took longer than 0.3 s (host.request_timeout_seconds) and was cancelled",
            await ApiTestServer.AssertErrorAsync(response, HttpStatusCode.GatewayTimeout, "timeout"));
        Assert.False(response.Headers.Contains("Retry-After"));
    }
}
