using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace BertHost.Tests.Protocols;

/// <summary>
/// Traces and metrics on OpenTelemetry: the serving spans of one request (found by the trace id the client sends), and
/// OTLP export to a collector on 127.0.0.1 (a minimal HTTP receiver standing in for one).
/// </summary>
public sealed class TelemetryTests
{
    [Fact]
    public async Task A_request_gets_queue_wait_body_pass_head_forward_and_decode_spans()
    {
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is ServingTelemetry.Name or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);
        var host = new ProtocolHost();
        try
        {
            await host.StartAsync(ProtocolHost.Yaml());
            var trace = ActivityTraceId.CreateRandom();
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/embeddings")
            {
                Content = JsonContent.Create(new { input = new[] { "a dog", "the city" }, model = "emb" }),
            };
            request.Headers.Add("traceparent", $"00-{trace}-{ActivitySpanId.CreateRandom()}-01");
            using var response = await host.Client.SendAsync(request);
            Assert.Equal(200, (int)response.StatusCode);

            var requestSpan = spans.Single(s => s.TraceId == trace && s.Source.Name == "Microsoft.AspNetCore");
            var waits = spans.Where(s => s.OperationName == ServingTelemetry.QueueWait && s.TraceId == trace).ToList();
            Assert.Equal(2, waits.Count);   // one per input
            Assert.All(waits, w => Assert.Equal(requestSpan.SpanId, w.ParentSpanId));
            // The scheduler may serve the two inputs in one pass or two: each pass is linked to the request.
            var passes = spans.Where(s => s.OperationName == ServingTelemetry.BodyPass && s.Links.Any(l => l.Context.TraceId == trace)).ToList();
            Assert.NotEmpty(passes);
            Assert.Equal(2, passes.Sum(p => (int)p.GetTagItem("berthost.rows")!));
            foreach (var pass in passes)
            {
                var forward = Assert.Single(spans, s => s.OperationName == ServingTelemetry.HeadForward && s.ParentSpanId == pass.SpanId);
                Assert.Equal("emb", forward.GetTagItem("berthost.head"));
                var decode = Assert.Single(spans, s => s.OperationName == ServingTelemetry.Decode && s.ParentSpanId == pass.SpanId);
                Assert.True(forward.StartTimeUtc <= decode.StartTimeUtc);
            }
            Assert.All(waits, w => Assert.Contains(passes, p => w.StartTimeUtc + w.Duration <= p.StartTimeUtc + TimeSpan.FromMilliseconds(1)));
        }
        finally
        {
            await host.DisposeAsync();
        }
    }

    [Fact]
    public async Task Otlp_export_sends_the_spans_and_the_meters_instruments_to_the_configured_collector()
    {
        var received = new ConcurrentDictionary<string, byte[]>();
        var collector = WebApplication.CreateSlimBuilder();
        collector.WebHost.UseUrls("http://127.0.0.1:0");
        await using var receiver = collector.Build();
        receiver.MapPost("/v1/{signal}", async (HttpContext context, string signal) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            received.AddOrUpdate(signal, body.ToArray(), (_, old) => [.. old, .. body.ToArray()]);
            return Results.Ok();
        });
        await receiver.StartAsync();

        var host = new ProtocolHost();
        try
        {
            await host.StartAsync(ProtocolHost.Yaml(extra: "") + $"""

                telemetry:
                  otlp_endpoint: {receiver.Urls.First()}
                  otlp_protocol: http/protobuf
                  service_name: berthost-otlp-test
                """);
            Assert.Equal(200, (await host.PostAsync("/embed", new { inputs = "a dog", model = "emb" })).Status);
        }
        finally
        {
            await host.DisposeAsync();   // stopping flushes both exporters
        }
        string Text(string signal) => received.TryGetValue(signal, out var bytes) ? Encoding.UTF8.GetString(bytes) : "";
        // OTLP is protobuf: names travel as UTF-8 strings inside it.
        Assert.Contains(ServingTelemetry.BodyPass, Text("traces"));
        Assert.Contains(ServingTelemetry.QueueWait, Text("traces"));
        Assert.Contains("berthost-otlp-test", Text("traces"));
        Assert.Contains("berthost.requests", Text("metrics"));
        Assert.Contains("berthost.body.duration", Text("metrics"));
        Assert.Contains("berthost.queue.inputs", Text("metrics"));
    }
}
