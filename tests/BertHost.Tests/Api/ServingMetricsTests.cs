using System.Globalization;
using System.Text.RegularExpressions;
using BertHost.Core.Serving;

namespace BertHost.Tests.Api;

public sealed partial class ServingMetricsTests
{
    private static string[] Block(string text, string family) =>
        text.Split('\n').Where(l => l.StartsWith($"# HELP {family} ") || l.StartsWith($"# TYPE {family} ") ||
                                    Regex.IsMatch(l, $"^{family}(_bucket|_sum|_count)?[{{ ]")).ToArray();

    [Fact]
    public void Fresh_metrics_expose_every_family_with_zero_series_where_unlabelled()
    {
        var text = new ServingMetrics().ToPrometheusText();
        AssertValidExposition(text);
        foreach (var family in new[]
                 {
                     "berthost_requests_total", "berthost_request_inputs_total", "berthost_responses_total", "berthost_http_request_duration_seconds",
                     "berthost_request_errors_total", "berthost_queue_time_seconds", "berthost_batch_rows", "berthost_batch_tokens",
                     "berthost_body_seconds", "berthost_head_seconds", "berthost_head_rows_total", "berthost_heads",
                 })
            Assert.Contains($"# TYPE {family} ", text);
        Assert.Contains("berthost_queue_time_seconds_count 0\n", text);
        Assert.Contains("berthost_batch_tokens_bucket{kind=\"padded\",le=\"+Inf\"} 0\n", text);
        Assert.Contains("berthost_heads{state=\"ready\"} 0\n", text);
        Assert.Contains("berthost_heads{state=\"failed\"} 0\n", text);
        Assert.DoesNotContain("berthost_requests_total{", text);
        Assert.EndsWith("\n", text);
    }

    [Fact]
    public void Counters_are_exact_lines_with_labels_in_declared_order_and_sorted_series()
    {
        var m = new ServingMetrics();
        m.RecordRequest("/v1/heads/{name}/predict", "sentiment", 3);
        m.RecordRequest("/v1/heads/{name}/predict", "sentiment", 2);
        m.RecordRequest("/v1/predict", null, 4);
        m.RecordError("ner", "invalid_input");
        m.RecordError(null, "not_found");
        m.RecordError("ner", "invalid_input");
        var text = m.ToPrometheusText();
        Assert.Equal(
        [
            "# HELP berthost_requests_total Requests received, by route and head.",
            "# TYPE berthost_requests_total counter",
            "berthost_requests_total{route=\"/v1/heads/{name}/predict\",head=\"sentiment\"} 2",
            "berthost_requests_total{route=\"/v1/predict\",head=\"\"} 1",
        ], Block(text, "berthost_requests_total"));
        Assert.Equal(
        [
            "# HELP berthost_request_inputs_total Inputs received in requests, by route and head.",
            "# TYPE berthost_request_inputs_total counter",
            "berthost_request_inputs_total{route=\"/v1/heads/{name}/predict\",head=\"sentiment\"} 5",
            "berthost_request_inputs_total{route=\"/v1/predict\",head=\"\"} 4",
        ], Block(text, "berthost_request_inputs_total"));
        Assert.Equal(
        [
            "# HELP berthost_request_errors_total Requests that failed, by head and error code.",
            "# TYPE berthost_request_errors_total counter",
            "berthost_request_errors_total{head=\"\",code=\"not_found\"} 1",
            "berthost_request_errors_total{head=\"ner\",code=\"invalid_input\"} 2",
        ], Block(text, "berthost_request_errors_total"));
    }

    [Fact]
    public void Histogram_has_cumulative_inclusive_buckets_then_sum_and_count()
    {
        var m = new ServingMetrics();
        m.RecordQueueTime(0.0001);  // on a bound: le is inclusive
        m.RecordQueueTime(0.003);
        m.RecordQueueTime(0.003);
        m.RecordQueueTime(100);     // above every bound
        var lines = Block(m.ToPrometheusText(), "berthost_queue_time_seconds");
        Assert.Equal(
        [
            "# HELP berthost_queue_time_seconds Time an input waited in the queue before its body pass.",
            "# TYPE berthost_queue_time_seconds histogram",
            "berthost_queue_time_seconds_bucket{le=\"0.0001\"} 1",
            "berthost_queue_time_seconds_bucket{le=\"0.00025\"} 1",
            "berthost_queue_time_seconds_bucket{le=\"0.0005\"} 1",
            "berthost_queue_time_seconds_bucket{le=\"0.001\"} 1",
            "berthost_queue_time_seconds_bucket{le=\"0.0025\"} 1",
            "berthost_queue_time_seconds_bucket{le=\"0.005\"} 3",
            "berthost_queue_time_seconds_bucket{le=\"0.01\"} 3",
            "berthost_queue_time_seconds_bucket{le=\"0.025\"} 3",
            "berthost_queue_time_seconds_bucket{le=\"0.05\"} 3",
            "berthost_queue_time_seconds_bucket{le=\"0.1\"} 3",
            "berthost_queue_time_seconds_bucket{le=\"0.25\"} 3",
            "berthost_queue_time_seconds_bucket{le=\"0.5\"} 3",
            "berthost_queue_time_seconds_bucket{le=\"1\"} 3",
            "berthost_queue_time_seconds_bucket{le=\"2.5\"} 3",
            "berthost_queue_time_seconds_bucket{le=\"5\"} 3",
            "berthost_queue_time_seconds_bucket{le=\"+Inf\"} 4",
            $"berthost_queue_time_seconds_sum {(0.0001 + 0.003 + 0.003 + 100).ToString("R", CultureInfo.InvariantCulture)}",
            "berthost_queue_time_seconds_count 4",
        ], lines);
    }

    [Fact]
    public void Batch_head_response_and_heads_metrics()
    {
        var m = new ServingMetrics();
        m.RecordBatch(rows: 8, realTokens: 100, paddedTokens: 128, bodySeconds: 0.02);
        m.RecordHeadTime("sentiment", 8, 0.001);
        m.RecordResponse("/healthz", 200, 0.0005);
        m.RecordResponse("/healthz", 200, 0.0005);
        m.RecordResponse("/v1/predict", 429, 0.0005);
        m.SetHeadsReady(2, 1);
        var text = m.ToPrometheusText();
        AssertValidExposition(text);
        Assert.Contains("berthost_batch_rows_bucket{le=\"4\"} 0\n", text);
        Assert.Contains("berthost_batch_rows_bucket{le=\"8\"} 1\n", text);
        Assert.Contains("berthost_batch_rows_sum 8\n", text);
        Assert.Contains("berthost_batch_tokens_bucket{kind=\"real\",le=\"64\"} 0\n", text);
        Assert.Contains("berthost_batch_tokens_bucket{kind=\"real\",le=\"128\"} 1\n", text);
        Assert.Contains("berthost_batch_tokens_sum{kind=\"real\"} 100\n", text);
        Assert.Contains("berthost_batch_tokens_sum{kind=\"padded\"} 128\n", text);
        Assert.Contains("berthost_body_seconds_count 1\n", text);
        Assert.Contains("berthost_body_seconds_sum 0.02\n", text);
        Assert.Contains("berthost_head_seconds_bucket{head=\"sentiment\",le=\"0.001\"} 1\n", text);
        Assert.Contains("berthost_head_seconds_count{head=\"sentiment\"} 1\n", text);
        Assert.Contains("berthost_head_rows_total{head=\"sentiment\"} 8\n", text);
        Assert.Contains("berthost_responses_total{route=\"/healthz\",status=\"200\"} 2\n", text);
        Assert.Contains("berthost_responses_total{route=\"/v1/predict\",status=\"429\"} 1\n", text);
        Assert.Contains("berthost_http_request_duration_seconds_count{route=\"/healthz\"} 2\n", text);
        Assert.Contains("berthost_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.001\"} 2\n", text);
        Assert.Contains("berthost_heads{state=\"ready\"} 2\n", text);
        Assert.Contains("berthost_heads{state=\"failed\"} 1\n", text);
    }

    [Fact]
    public void Label_values_are_escaped()
    {
        var m = new ServingMetrics();
        m.RecordError("we\"ird\\head\nx", "invalid_input");
        var text = m.ToPrometheusText();
        Assert.Contains("berthost_request_errors_total{head=\"we\\\"ird\\\\head\\nx\",code=\"invalid_input\"} 1\n", text);
        AssertValidExposition(text);
    }

    [Fact]
    public void Queue_depth_gauges_read_their_source_at_each_scrape()
    {
        using var m = new ServingMetrics();
        Assert.DoesNotContain("berthost_queue_inputs", m.ToPrometheusText());   // no scheduler yet: not exposed
        var depth = (Inputs: 3L, Tokens: 120L);
        m.ObserveQueue(() => depth);
        var text = m.ToPrometheusText();
        AssertValidExposition(text);
        Assert.Contains("# TYPE berthost_queue_inputs gauge\n", text);
        Assert.Contains("berthost_queue_inputs 3\n", text);
        Assert.Contains("berthost_queue_tokens 120\n", text);
        depth = (0, 0);
        Assert.Contains("berthost_queue_inputs 0\n", m.ToPrometheusText());
    }

    [Fact]
    public void The_same_measurements_reach_any_listener_of_the_meter_as_opentelemetry_reads_them()
    {
        using var m = new ServingMetrics();
        // Other tests' hosts record on meters of the same name at the same time: listen to this instance's only.
        var seen = new System.Collections.Concurrent.ConcurrentBag<(string Instrument, double Value, string Tags)>();
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (i, l) => { if (i.Meter == m.Meter) l.EnableMeasurementEvents(i); },
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => seen.Add((i.Name, v, string.Join(",", tags.ToArray().Select(t => $"{t.Key}={t.Value}")))));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => seen.Add((i.Name, v, string.Join(",", tags.ToArray().Select(t => $"{t.Key}={t.Value}")))));
        listener.Start();
        m.RecordRequest("/embed", "emb", 2);
        m.RecordBatch(rows: 2, realTokens: 10, paddedTokens: 12, bodySeconds: 0.5);
        Assert.Contains(("berthost.requests", 1.0, "route=/embed,head=emb"), seen);
        Assert.Contains(("berthost.request.inputs", 2.0, "route=/embed,head=emb"), seen);
        Assert.Contains(("berthost.body.duration", 0.5, ""), seen);
        // ... and the text exposition counts them once.
        var text = m.ToPrometheusText();
        Assert.Contains("berthost_requests_total{route=\"/embed\",head=\"emb\"} 1\n", text);
        Assert.Contains("berthost_body_seconds_sum 0.5\n", text);
    }

    [Fact]
    public void Recording_from_many_threads_loses_nothing()
    {
        var m = new ServingMetrics();
        Parallel.For(0, 8, thread =>
        {
            for (var i = 0; i < 5000; i++)
            {
                m.RecordRequest("/v1/predict", null, 1);
                m.RecordQueueTime(0.001);
                if (i % 1000 == 0) _ = m.ToPrometheusText();
            }
        });
        var text = m.ToPrometheusText();
        Assert.Contains("berthost_requests_total{route=\"/v1/predict\",head=\"\"} 40000\n", text);
        Assert.Contains("berthost_queue_time_seconds_count 40000\n", text);
        Assert.Contains("berthost_queue_time_seconds_bucket{le=\"0.001\"} 40000\n", text);
    }

    [Fact]
    public void WritePrometheus_writes_the_same_text()
    {
        var m = new ServingMetrics();
        m.RecordRequest("/healthz", null, 0);
        var writer = new StringWriter();
        m.WritePrometheus(writer);
        Assert.Equal(m.ToPrometheusText(), writer.ToString());
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[a-zA-Z_][a-zA-Z0-9_]*="(\\\\|\\"|\\n|[^"\\\n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\\\|\\"|\\n|[^"\\\n])*")*)\})? (?<value>\S+)$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex("""^# (HELP|TYPE) (?<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?<rest>.*)$""")]
    private static partial Regex CommentLine();

    /// <summary>
    /// Checks the text exposition format: HELP then TYPE before a family's samples, each family once, sample names belong
    /// to the declared family (with _bucket/_sum/_count for histograms), values parse, buckets are cumulative and end in
    /// +Inf equal to _count, counters end in _total.
    /// </summary>
    internal static void AssertValidExposition(string text)
    {
        Assert.EndsWith("\n", text);
        var declared = new Dictionary<string, string>();
        string? current = null;
        var lastBucket = new Dictionary<string, (double Le, double Count)>();
        foreach (var line in text[..^1].Split('\n'))
        {
            if (line.StartsWith('#'))
            {
                var c = CommentLine().Match(line);
                Assert.True(c.Success, $"bad comment line: {line}");
                var name = c.Groups["name"].Value;
                Assert.StartsWith("berthost_", name);
                if (c.Groups[1].Value == "HELP")
                {
                    Assert.False(declared.ContainsKey(name), $"family {name} declared twice");
                    current = name;
                }
                else
                {
                    Assert.Equal(current, name);
                    var type = c.Groups["rest"].Value;
                    Assert.Contains(type, new[] { "counter", "gauge", "histogram" });
                    if (type == "counter") Assert.EndsWith("_total", name);
                    declared[name] = type;
                }
                continue;
            }
            var m = SampleLine().Match(line);
            Assert.True(m.Success, $"bad sample line: {line}");
            Assert.NotNull(current);
            var sample = m.Groups["name"].Value;
            var value = m.Groups["value"].Value;
            Assert.True(value is "+Inf" or "-Inf" or "NaN" || double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _), $"bad value: {line}");
            if (declared[current!] == "histogram")
            {
                Assert.Contains(sample, new[] { current + "_bucket", current + "_sum", current + "_count" });
                var labels = m.Groups["labels"].Value;
                var series = Regex.Replace(labels, ",?le=\"[^\"]*\"", "");
                var count = double.Parse(value, CultureInfo.InvariantCulture);
                if (sample.EndsWith("_bucket"))
                {
                    var le = Regex.Match(labels, "le=\"([^\"]*)\"").Groups[1].Value;
                    var bound = le == "+Inf" ? double.PositiveInfinity : double.Parse(le, CultureInfo.InvariantCulture);
                    if (lastBucket.TryGetValue(current + series, out var prev))
                    {
                        Assert.True(bound > prev.Le, $"buckets out of order: {line}");
                        Assert.True(count >= prev.Count, $"buckets not cumulative: {line}");
                    }
                    lastBucket[current + series] = (bound, count);
                }
                else if (sample.EndsWith("_count"))
                {
                    var last = lastBucket[current + series];
                    Assert.Equal(double.PositiveInfinity, last.Le);
                    Assert.Equal(last.Count, count);
                }
            }
            else
            {
                Assert.Equal(current, sample);
            }
        }
    }
}
