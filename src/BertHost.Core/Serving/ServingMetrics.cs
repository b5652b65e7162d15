using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace BertHost.Core.Serving;

/// <summary>
/// The host's metrics: instruments of a <see cref="Meter"/> named <see cref="MeterName"/> (what OpenTelemetry exports,
/// e.g. over OTLP), and the same measurements in the Prometheus text exposition format (version 0.0.4) for
/// <c>GET /metrics</c>, aggregated here by a <see cref="MeterListener"/> on this instance's instruments. The text keeps
/// the names, label order, buckets and always-present families the host has served since before OpenTelemetry (the
/// OpenTelemetry Prometheus exporter would add an <c>otel_scope_name</c> label to every series and a
/// <c>target_info</c> family, sort labels by name, and leave out instruments not yet recorded).
/// Thread-safe; one instance per host (no static state). The HTTP layer records requests, responses and errors; the
/// engine records queue times, batches, head times, head readiness and the queue's depth.
/// </summary>
public sealed class ServingMetrics : IDisposable
{
    /// <summary>The Content-Type of <see cref="WritePrometheus"/>'s output.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>The name of the <see cref="Meter"/> (and of the activity source, <see cref="ServingTelemetry"/>).</summary>
    public const string MeterName = ServingTelemetry.Name;

    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    private static readonly double[] QueueBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
    private static readonly double[] RowBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
    private static readonly double[] TokenBuckets = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];

    private readonly Counter _requests = new("berthost_requests_total", "Requests received, by route and head.", "route", "head");
    private readonly Counter _requestInputs = new("berthost_request_inputs_total", "Inputs received in requests, by route and head.", "route", "head");
    private readonly Counter _responses = new("berthost_responses_total", "Responses sent, by route and HTTP status code.", "route", "status");
    private readonly Histogram _httpDuration = new("berthost_http_request_duration_seconds", "Time from request start to response end, by route.", LatencyBuckets, "route");
    private readonly Counter _errors = new("berthost_request_errors_total", "Requests that failed, by head and error code.", "head", "code");
    private readonly Histogram _queueTime = new("berthost_queue_time_seconds", "Time an input waited in the queue before its body pass.", QueueBuckets);
    private readonly Histogram _batchRows = new("berthost_batch_rows", "Rows (token sequences) per body pass.", RowBuckets);
    private readonly Histogram _batchTokens = new("berthost_batch_tokens", "Tokens per body pass: real (attended) and padded (rows x longest row).", TokenBuckets, "kind");
    private readonly Histogram _bodySeconds = new("berthost_body_seconds", "Time of one body pass.", LatencyBuckets);
    private readonly Histogram _headSeconds = new("berthost_head_seconds", "Time of one head pass over a batch, by head.", LatencyBuckets, "head");
    private readonly Counter _headRows = new("berthost_head_rows_total", "Rows run through a head, by head.", "head");
    private readonly Gauge _jobs = new("berthost_jobs", "Training jobs by state (queued, running, succeeded, failed, cancelled, interrupted).", "state");
    private readonly Gauge _heads = new("berthost_heads", "Configured heads by state (ready, failed: failed to load or stale).", "state");
    private readonly Gauge _queueInputs = new("berthost_queue_inputs", "Inputs admitted and not finished (waiting or in a body pass): what batching.max_queued_inputs bounds.");
    private readonly Gauge _queueTokens = new("berthost_queue_tokens", "Tokens admitted and not finished: what batching.max_queued_tokens bounds.");

    private readonly Meter _meter = new(MeterName);

    /// <summary>This instance's meter (several hosts in one process each have their own, all named <see cref="MeterName"/>).</summary>
    public Meter Meter => _meter;
    private readonly MeterListener _listener = new();
    private readonly Dictionary<Instrument, Action<double, ReadOnlySpan<KeyValuePair<string, object?>>>> _sinks = [];
    private readonly Counter<long> _requestCount, _requestInputCount, _responseCount, _errorCount, _headRowCount;
    private readonly Histogram<double> _httpDurationHistogram, _queueTimeHistogram, _bodyHistogram, _headHistogram;
    private readonly Histogram<int> _batchRowsHistogram, _batchTokensHistogram;
    private volatile int _headsReady, _headsFailed;
    private volatile IReadOnlyDictionary<string, int>? _jobCounts;
    private volatile Func<(long Inputs, long Tokens)>? _queue;

    public ServingMetrics()
    {
        _requestCount = Sink(_meter.CreateCounter<long>("berthost.requests", "{request}", "Requests received, by route and head."), _requests);
        _requestInputCount = Sink(_meter.CreateCounter<long>("berthost.request.inputs", "{input}", "Inputs received in requests, by route and head."), _requestInputs);
        _responseCount = Sink(_meter.CreateCounter<long>("berthost.responses", "{response}", "Responses sent, by route and HTTP status code."), _responses);
        _httpDurationHistogram = Sink(CreateHistogram<double>("berthost.http.request.duration", "s", "Time from request start to response end, by route.", LatencyBuckets), _httpDuration);
        _errorCount = Sink(_meter.CreateCounter<long>("berthost.request.errors", "{request}", "Requests that failed, by head and error code."), _errors);
        _queueTimeHistogram = Sink(CreateHistogram<double>("berthost.queue.time", "s", "Time an input waited in the queue before its body pass.", QueueBuckets), _queueTime);
        _batchRowsHistogram = Sink(CreateHistogram<int>("berthost.batch.rows", "{row}", "Rows (token sequences) per body pass.", RowBuckets), _batchRows);
        _batchTokensHistogram = Sink(CreateHistogram<int>("berthost.batch.tokens", "{token}", "Tokens per body pass: real (attended) and padded (rows x longest row).", TokenBuckets), _batchTokens);
        _bodyHistogram = Sink(CreateHistogram<double>("berthost.body.duration", "s", "Time of one body pass.", LatencyBuckets), _bodySeconds);
        _headHistogram = Sink(CreateHistogram<double>("berthost.head.duration", "s", "Time of one head pass over a batch, by head.", LatencyBuckets), _headSeconds);
        _headRowCount = Sink(_meter.CreateCounter<long>("berthost.head.rows", "{row}", "Rows run through a head, by head."), _headRows);
        Sink(_meter.CreateObservableGauge("berthost.heads", () => (IEnumerable<Measurement<int>>)
            [new(_headsReady, new KeyValuePair<string, object?>("state", "ready")), new(_headsFailed, new KeyValuePair<string, object?>("state", "failed"))],
            "{head}", "Configured heads by state (ready, failed: failed to load or stale)."), _heads);
        Sink(_meter.CreateObservableGauge("berthost.jobs", () => (_jobCounts ?? new Dictionary<string, int>())
            .Select(p => new Measurement<int>(p.Value, new KeyValuePair<string, object?>("state", p.Key))),
            "{job}", "Training jobs by state."), _jobs);
        // Fit for autoscaling: how much work is admitted and not yet done.
        Sink(_meter.CreateObservableGauge("berthost.queue.inputs", () => _queue is { } q ? [new Measurement<long>(q().Inputs)] : Array.Empty<Measurement<long>>(),
            "{input}", "Inputs admitted and not finished (waiting or in a body pass)."), _queueInputs);
        Sink(_meter.CreateObservableGauge("berthost.queue.tokens", () => _queue is { } q ? [new Measurement<long>(q().Tokens)] : Array.Empty<Measurement<long>>(),
            "{token}", "Tokens admitted and not finished (waiting or in a body pass)."), _queueTokens);

        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter == _meter && _sinks.ContainsKey(instrument)) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => _sinks[i](v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => _sinks[i](v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => _sinks[i](v, tags));
        _listener.Start();

        _queueTime.Touch();
        _batchRows.Touch();
        _batchTokens.Touch("real");
        _batchTokens.Touch("padded");
        _bodySeconds.Touch();
        _heads.Set(0, "ready");
        _heads.Set(0, "failed");
    }

    private Histogram<T> CreateHistogram<T>(string name, string unit, string description, double[] buckets) where T : struct =>
        _meter.CreateHistogram(name, unit, description, tags: null, advice: new InstrumentAdvice<T>
        {
            HistogramBucketBoundaries = buckets.Select(b => (T)Convert.ChangeType(b, typeof(T), CultureInfo.InvariantCulture)).ToArray(),
        });

    /// <summary>Routes an instrument's measurements into a Prometheus family, its tags taken by the family's label names.</summary>
    private T Sink<T>(T instrument, Family family) where T : Instrument
    {
        _sinks[instrument] = family switch
        {
            Counter c => (v, tags) => c.Add(v, Labels(c, tags)),
            Gauge g => (v, tags) => g.Set(v, Labels(g, tags)),
            Histogram h => (v, tags) => h.Observe(v, Labels(h, tags)),
            _ => throw new ArgumentException(family.GetType().Name),
        };
        return instrument;
    }

    private static string[] Labels(Family family, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var names = family.LabelNamesOf;
        var values = new string[names.Length];
        for (var i = 0; i < names.Length; i++)
        {
            values[i] = "";
            foreach (var tag in tags)
                if (tag.Key == names[i]) values[i] = tag.Value as string ?? Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? "";
        }
        return values;
    }

    private static KeyValuePair<string, object?> Tag(string key, object? value) => new(key, value);

    /// <summary>A request arrived on <paramref name="route"/> (the route pattern, e.g. <c>/v1/heads/{name}/predict</c>).</summary>
    /// <param name="head">The head addressed, or null (several heads, or none).</param>
    /// <param name="inputs">Inputs in the request (0 when it carries none).</param>
    public void RecordRequest(string route, string? head, int inputs)
    {
        _requestCount.Add(1, Tag("route", route), Tag("head", head ?? ""));
        _requestInputCount.Add(inputs, Tag("route", route), Tag("head", head ?? ""));
    }

    /// <summary>A response was sent: its status and the time the request took.</summary>
    public void RecordResponse(string route, int statusCode, double seconds)
    {
        _responseCount.Add(1, Tag("route", route), Tag("status", statusCode.ToString(CultureInfo.InvariantCulture)));
        _httpDurationHistogram.Record(seconds, Tag("route", route));
    }

    /// <summary>A request failed with an error <paramref name="code"/> (<c>invalid_input</c>, <c>queue_full</c>...).</summary>
    public void RecordError(string? head, string code) => _errorCount.Add(1, Tag("head", head ?? ""), Tag("code", code));

    /// <summary>An input waited <paramref name="seconds"/> in the queue before its body pass.</summary>
    public void RecordQueueTime(double seconds) => _queueTimeHistogram.Record(seconds);

    /// <summary>One body pass: rows, real (non-padding) tokens, padded tokens (rows × longest row), and its duration.</summary>
    public void RecordBatch(int rows, int realTokens, int paddedTokens, double bodySeconds)
    {
        _batchRowsHistogram.Record(rows);
        _batchTokensHistogram.Record(realTokens, Tag("kind", "real"));
        _batchTokensHistogram.Record(paddedTokens, Tag("kind", "padded"));
        _bodyHistogram.Record(bodySeconds);
    }

    /// <summary>One head pass over <paramref name="rows"/> rows of a batch.</summary>
    public void RecordHeadTime(string head, int rows, double seconds)
    {
        _headHistogram.Record(seconds, Tag("head", head));
        _headRowCount.Add(rows, Tag("head", head));
    }

    /// <summary>How many heads are ready and how many failed (to load, or stale).</summary>
    public void SetHeadsReady(int ready, int failed)
    {
        _headsReady = ready;
        _headsFailed = failed;
    }

    /// <summary>How many jobs are in each state (only hosts that run jobs report it).</summary>
    public void SetJobs(IReadOnlyDictionary<string, int> countsByState) => _jobCounts = new Dictionary<string, int>(countsByState);

    /// <summary>Where the queue's depth is read (the scheduler: inputs and tokens admitted and not finished).</summary>
    public void ObserveQueue(Func<(long Inputs, long Tokens)> queue) => _queue = queue;

    /// <summary>Writes every metric in the Prometheus text exposition format, version 0.0.4.</summary>
    public void WritePrometheus(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        // Gauges are observed: their callbacks run now and feed the families.
        _listener.RecordObservableInstruments();
        var sb = new StringBuilder(4096);
        _requests.Write(sb);
        _requestInputs.Write(sb);
        _responses.Write(sb);
        _httpDuration.Write(sb);
        _errors.Write(sb);
        _queueTime.Write(sb);
        _batchRows.Write(sb);
        _batchTokens.Write(sb);
        _bodySeconds.Write(sb);
        _headSeconds.Write(sb);
        _headRows.Write(sb);
        _heads.Write(sb);
        if (_queue is not null)
        {
            _queueInputs.Write(sb);
            _queueTokens.Write(sb);
        }
        if (_jobCounts is not null) _jobs.Write(sb);
        writer.Write(sb.ToString());
    }

    /// <summary>The exposition as a string.</summary>
    public string ToPrometheusText()
    {
        var w = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        WritePrometheus(w);
        return w.ToString();
    }

    public void Dispose()
    {
        _listener.Dispose();
        _meter.Dispose();
    }

    internal static string FormatValue(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ when double.IsNaN(value) => "NaN",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

    internal static string EscapeLabelValue(string value)
    {
        if (value.AsSpan().IndexOfAny("\\\"\n") < 0) return value;
        return value.Replace("\\", @"\\").Replace("\"", "\\\"").Replace("\n", @"\n");
    }

    private static string EscapeHelp(string value) => value.Replace("\\", @"\\").Replace("\n", @"\n");

    private abstract class Family(string name, string help, string type, string[] labelNames)
    {
        protected readonly object Gate = new();
        protected string Name { get; } = name;
        protected string[] LabelNames { get; } = labelNames;
        public string[] LabelNamesOf => LabelNames;

        protected static string Key(string[] values) => string.Join('\u0001', values);

        protected void CheckArity(string[] values)
        {
            if (values.Length != LabelNames.Length)
                throw new ArgumentException($"{Name} takes {LabelNames.Length} label value(s), got {values.Length}");
        }

        protected void WriteHeader(StringBuilder sb)
        {
            sb.Append("# HELP ").Append(Name).Append(' ').Append(EscapeHelp(help)).Append('\n');
            sb.Append("# TYPE ").Append(Name).Append(' ').Append(type).Append('\n');
        }

        /// <summary><c>{a="x",b="y"}</c> with an optional extra label last (le); nothing when there are no labels.</summary>
        protected void AppendLabels(StringBuilder sb, string[] values, string? extraName = null, string? extraValue = null)
        {
            if (values.Length == 0 && extraName is null) return;
            sb.Append('{');
            for (var i = 0; i < values.Length; i++)
            {
                if (i > 0) sb.Append(',');
                sb.Append(LabelNames[i]).Append("=\"").Append(EscapeLabelValue(values[i])).Append('"');
            }
            if (extraName is not null)
            {
                if (values.Length > 0) sb.Append(',');
                sb.Append(extraName).Append("=\"").Append(extraValue).Append('"');
            }
            sb.Append('}');
        }

        public abstract void Write(StringBuilder sb);
    }

    /// <summary>A family whose series are single numbers (counters and gauges print alike).</summary>
    private abstract class ScalarFamily(string name, string help, string type, string[] labelNames) : Family(name, help, type, labelNames)
    {
        protected readonly Dictionary<string, (string[] Labels, double Value)> Series = new(StringComparer.Ordinal);

        public override void Write(StringBuilder sb)
        {
            WriteHeader(sb);
            lock (Gate)
            {
                foreach (var (_, (labels, value)) in Series.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    sb.Append(Name);
                    AppendLabels(sb, labels);
                    sb.Append(' ').Append(FormatValue(value)).Append('\n');
                }
            }
        }
    }

    private sealed class Counter(string name, string help, params string[] labelNames) : ScalarFamily(name, help, "counter", labelNames)
    {
        public void Add(double amount, params string[] labels)
        {
            CheckArity(labels);
            if (amount < 0 || double.IsNaN(amount)) throw new ArgumentOutOfRangeException(nameof(amount), "counters only go up");
            var key = Key(labels);
            lock (Gate)
                Series[key] = Series.TryGetValue(key, out var s) ? (s.Labels, s.Value + amount) : ((string[])labels.Clone(), amount);
        }
    }

    private sealed class Gauge(string name, string help, params string[] labelNames) : ScalarFamily(name, help, "gauge", labelNames)
    {
        public void Set(double value, params string[] labels)
        {
            CheckArity(labels);
            lock (Gate) Series[Key(labels)] = ((string[])labels.Clone(), value);
        }
    }

    private sealed class Histogram(string name, string help, double[] buckets, params string[] labelNames) : Family(name, help, "histogram", labelNames)
    {
        private sealed class Series(string[] labels, int buckets)
        {
            public readonly string[] Labels = labels;
            /// <summary>Observations per bucket, not cumulative; the last slot is above the largest bound.</summary>
            public readonly long[] Counts = new long[buckets + 1];
            public double Sum;
            public long Count;
        }

        private readonly Dictionary<string, Series> _series = new(StringComparer.Ordinal);
        private readonly string[] _bounds = buckets.Select(FormatValue).ToArray();

        /// <summary>Creates the series with zero observations, so it is exposed before the first one.</summary>
        public void Touch(params string[] labels)
        {
            CheckArity(labels);
            lock (Gate) GetSeries(labels);
        }

        public void Observe(double value, params string[] labels)
        {
            CheckArity(labels);
            if (double.IsNaN(value)) return;
            var slot = Array.BinarySearch(buckets, value);
            if (slot < 0) slot = ~slot; // first bound >= value (le is inclusive)
            lock (Gate)
            {
                var s = GetSeries(labels);
                s.Counts[slot]++;
                s.Sum += value;
                s.Count++;
            }
        }

        private Series GetSeries(string[] labels)
        {
            var key = Key(labels);
            if (!_series.TryGetValue(key, out var s)) _series[key] = s = new Series((string[])labels.Clone(), buckets.Length);
            return s;
        }

        public override void Write(StringBuilder sb)
        {
            WriteHeader(sb);
            lock (Gate)
            {
                foreach (var (_, s) in _series.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    long cumulative = 0;
                    for (var i = 0; i <= buckets.Length; i++)
                    {
                        cumulative += s.Counts[i];
                        sb.Append(Name).Append("_bucket");
                        AppendLabels(sb, s.Labels, "le", i < buckets.Length ? _bounds[i] : "+Inf");
                        sb.Append(' ').Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
                    }
                    sb.Append(Name).Append("_sum");
                    AppendLabels(sb, s.Labels);
                    sb.Append(' ').Append(FormatValue(s.Sum)).Append('\n');
                    sb.Append(Name).Append("_count");
                    AppendLabels(sb, s.Labels);
                    sb.Append(' ').Append(s.Count.ToString(CultureInfo.InvariantCulture)).Append('\n');
                }
            }
        }
    }
}
