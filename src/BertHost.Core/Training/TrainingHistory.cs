using System.Globalization;
using System.Security.Cryptography;
using System.Security;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace BertHost.Core.Training;

/// <summary>
/// A data file a run read: its role (train, eval), full path, size and sha256 (lower-case hex); for training jobs also
/// the name the client gave it (<paramref name="Name"/>, what responses and job errors show instead of the path) and
/// where it came from (<paramref name="Source"/>: <c>upload</c> or <c>data_root</c>).
/// </summary>
public sealed record TrainingDataFile(string Role, string Path, long Bytes, string Sha256, string? Name = null, string? Source = null)
{
    /// <summary>Describes <paramref name="path"/> (hashes the file).</summary>
    public static TrainingDataFile Describe(string role, string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        using var stream = File.OpenRead(full);
        var hash = SHA256.HashData(stream);
        return new TrainingDataFile(role, full, stream.Length, Convert.ToHexStringLower(hash));
    }
}

/// <summary>
/// The per-epoch record of one training run, written as <c>history.json</c> (epochs, options, data files with their
/// sha256), <c>history.csv</c> (<c>epoch,loss,seconds,&lt;metric columns&gt;</c>) and <c>history.svg</c> (a plain SVG line
/// plot of the training loss and the primary eval metric per epoch; no external library).
/// </summary>
public sealed class TrainingHistory
{
    public const string JsonFile = "history.json";
    public const string CsvFile = "history.csv";
    public const string SvgFile = "history.svg";

    private readonly IReadOnlyList<EpochResult> _epochs;

    /// <param name="epochs">The run's epochs, in order.</param>
    /// <param name="primaryMetric">The head's primary metric (plotted), e.g. accuracy or f1; null = none.</param>
    /// <param name="options">The run's settings (recorded in the JSON).</param>
    /// <param name="data">The data files read (recorded in the JSON).</param>
    /// <param name="info">Other facts to record (head, config, body, mode, best epoch...), as JSON values.</param>
    public TrainingHistory(IReadOnlyList<EpochResult> epochs, string? primaryMetric, TrainingOptions? options = null,
        IReadOnlyList<TrainingDataFile>? data = null, IReadOnlyDictionary<string, JsonNode?>? info = null)
    {
        _epochs = epochs ?? throw new ArgumentNullException(nameof(epochs));
        PrimaryMetric = primaryMetric;
        Options = options;
        Data = data ?? [];
        Info = info ?? new Dictionary<string, JsonNode?>();
    }

    public string? PrimaryMetric { get; }

    /// <summary>What the points are numbered by: <c>epoch</c> (training heads) or <c>step</c> (pre-training's loss curve).
    /// It names the CSV's first column and the plot's x axis.</summary>
    public string XAxis { get; init; } = "epoch";
    public TrainingOptions? Options { get; }
    public IReadOnlyList<TrainingDataFile> Data { get; }
    public IReadOnlyDictionary<string, JsonNode?> Info { get; }
    public IReadOnlyList<EpochResult> Epochs => _epochs;

    /// <summary>The metric names of every epoch, sorted ordinally (the CSV's metric columns).</summary>
    public IReadOnlyList<string> MetricNames =>
        _epochs.SelectMany(e => e.Metrics?.Keys ?? Enumerable.Empty<string>()).Distinct().OrderBy(k => k, StringComparer.Ordinal).ToList();

    /// <summary>Writes history.json, history.csv and history.svg into <paramref name="directory"/> (created if needed); returns their paths.</summary>
    public IReadOnlyList<string> WriteTo(string directory)
    {
        Directory.CreateDirectory(directory);
        var files = new[] { (JsonFile, ToJson()), (CsvFile, ToCsv()), (SvgFile, ToSvg()) };
        var paths = new List<string>();
        foreach (var (name, text) in files)
        {
            var path = Path.Combine(directory, name);
            File.WriteAllText(path, text, new UTF8Encoding(false));
            paths.Add(path);
        }
        return paths;
    }

    public JsonObject ToJsonObject()
    {
        var root = new JsonObject();
        foreach (var (k, v) in Info) root[k] = v?.DeepClone();
        root["primary_metric"] = PrimaryMetric;
        if (XAxis != "epoch") root["x_axis"] = XAxis;
        if (Options is { } o)
        {
            root["options"] = o.ToJson();
        }
        var data = new JsonArray();
        foreach (var d in Data)
            data.Add(new JsonObject { ["role"] = d.Role, ["path"] = d.Path, ["bytes"] = d.Bytes, ["sha256"] = d.Sha256 });
        root["data"] = data;
        var epochs = new JsonArray();
        foreach (var e in _epochs)
        {
            epochs.Add(new JsonObject
            {
                ["epoch"] = e.Epoch,
                ["loss"] = Finite(e.TrainLoss),
                ["seconds"] = Math.Round(e.Seconds, 3),
                ["metrics"] = e.Metrics is null ? null
                    : new JsonObject(e.Metrics.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)Finite(kv.Value)))),
            });
        }
        root["epochs"] = epochs;
        return root;
    }

    public string ToJson() => ToJsonObject().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";

    /// <summary><c>epoch,loss,seconds,&lt;metrics&gt;</c>; an epoch without a metric leaves its cell empty.</summary>
    public string ToCsv()
    {
        var names = MetricNames;
        var sb = new StringBuilder();
        sb.Append(CsvCell(XAxis)).Append(",loss,seconds");
        foreach (var n in names) sb.Append(',').Append(CsvCell(n));
        sb.Append('\n');
        foreach (var e in _epochs)
        {
            sb.Append(e.Epoch.ToString(CultureInfo.InvariantCulture)).Append(',').Append(Num(e.TrainLoss)).Append(',')
                .Append(Math.Round(e.Seconds, 3).ToString("R", CultureInfo.InvariantCulture));
            foreach (var n in names)
            {
                sb.Append(',');
                if (e.Metrics is not null && e.Metrics.TryGetValue(n, out var v)) sb.Append(Num(v));
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// A line plot: training loss (left axis) and the primary metric (right axis) against the epoch, with tick labels
    /// and a legend. Each series is one <c>polyline</c> with one point per epoch that has a value (plus circle markers).
    /// </summary>
    public string ToSvg()
    {
        const double width = 640, height = 360, left = 64, right = 64, top = 40, bottom = 48;
        const double plotW = width - left - right, plotH = height - top - bottom;
        var losses = _epochs.Where(e => double.IsFinite(e.TrainLoss)).Select(e => (e.Epoch, Value: e.TrainLoss)).ToList();
        var metric = PrimaryMetric is null ? [] : _epochs
            .Where(e => e.Metrics is not null && e.Metrics.TryGetValue(PrimaryMetric, out var v) && double.IsFinite(v))
            .Select(e => (e.Epoch, Value: e.Metrics![PrimaryMetric!])).ToList();

        var firstEpoch = _epochs.Count == 0 ? 1 : _epochs.Min(e => e.Epoch);
        var lastEpoch = _epochs.Count == 0 ? 1 : _epochs.Max(e => e.Epoch);
        double X(int epoch) => lastEpoch == firstEpoch ? left + plotW / 2 : left + (epoch - firstEpoch) * plotW / (lastEpoch - firstEpoch);

        var (lossMin, lossMax) = Range(losses.Select(p => p.Value), clampToUnit: false);
        var (metricMin, metricMax) = Range(metric.Select(p => p.Value), clampToUnit: true);
        double Y(double v, double min, double max) => top + plotH - (v - min) / (max - min) * plotH;

        var sb = new StringBuilder();
        sb.Append(Inv($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n"));
        sb.Append("  <title>").Append(SecurityElement.Escape($"Training loss and {PrimaryMetric ?? "metric"} per {XAxis}")).Append("</title>\n");
        sb.Append(Inv($"  <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n"));
        // Axes.
        sb.Append(Inv($"  <g stroke=\"#333\" stroke-width=\"1\" fill=\"none\">\n"));
        sb.Append(Inv($"    <line x1=\"{left}\" y1=\"{top + plotH}\" x2=\"{left + plotW}\" y2=\"{top + plotH}\"/>\n"));
        sb.Append(Inv($"    <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{top + plotH}\"/>\n"));
        sb.Append(Inv($"    <line x1=\"{left + plotW}\" y1=\"{top}\" x2=\"{left + plotW}\" y2=\"{top + plotH}\"/>\n"));
        sb.Append("  </g>\n");
        // X ticks: every epoch, thinned to at most ~10 labels.
        var stride = Math.Max(1, (int)Math.Ceiling((lastEpoch - firstEpoch + 1) / 10.0));
        sb.Append("  <g class=\"x-ticks\" text-anchor=\"middle\">\n");
        for (var ep = firstEpoch; ep <= lastEpoch; ep += stride)
        {
            var x = X(ep);
            sb.Append(Inv($"    <line x1=\"{F(x)}\" y1=\"{top + plotH}\" x2=\"{F(x)}\" y2=\"{top + plotH + 4}\" stroke=\"#333\"/>\n"));
            sb.Append(Inv($"    <text x=\"{F(x)}\" y=\"{top + plotH + 16}\">{ep}</text>\n"));
        }
        sb.Append("  </g>\n");
        sb.Append(Inv($"  <text x=\"{left + plotW / 2}\" y=\"{height - 10}\" text-anchor=\"middle\">{SecurityElement.Escape(XAxis)}</text>\n"));
        // Y ticks: 5 per axis.
        sb.Append("  <g class=\"y-ticks-loss\" text-anchor=\"end\" fill=\"#1f77b4\">\n");
        for (var i = 0; i <= 4; i++)
        {
            var v = lossMin + (lossMax - lossMin) * i / 4;
            var y = Y(v, lossMin, lossMax);
            sb.Append(Inv($"    <line x1=\"{left - 4}\" y1=\"{F(y)}\" x2=\"{left}\" y2=\"{F(y)}\" stroke=\"#333\"/>\n"));
            sb.Append(Inv($"    <text x=\"{left - 6}\" y=\"{F(y + 4)}\">{Tick(v)}</text>\n"));
        }
        sb.Append("  </g>\n");
        sb.Append("  <g class=\"y-ticks-metric\" text-anchor=\"start\" fill=\"#d62728\">\n");
        for (var i = 0; i <= 4; i++)
        {
            var v = metricMin + (metricMax - metricMin) * i / 4;
            var y = Y(v, metricMin, metricMax);
            sb.Append(Inv($"    <line x1=\"{left + plotW}\" y1=\"{F(y)}\" x2=\"{left + plotW + 4}\" y2=\"{F(y)}\" stroke=\"#333\"/>\n"));
            sb.Append(Inv($"    <text x=\"{left + plotW + 6}\" y=\"{F(y + 4)}\">{Tick(v)}</text>\n"));
        }
        sb.Append("  </g>\n");
        sb.Append(Inv($"  <text transform=\"translate(14 {top + plotH / 2}) rotate(-90)\" text-anchor=\"middle\" fill=\"#1f77b4\">training loss</text>\n"));
        var metricLabel = SecurityElement.Escape(PrimaryMetric is null ? "metric" : $"eval {PrimaryMetric}");
        sb.Append(Inv($"  <text transform=\"translate({width - 10} {top + plotH / 2}) rotate(90)\" text-anchor=\"middle\" fill=\"#d62728\">{metricLabel}</text>\n"));
        // Series.
        Series(sb, "loss", "#1f77b4", losses.Select(p => (X(p.Epoch), Y(p.Value, lossMin, lossMax))).ToList());
        Series(sb, "metric", "#d62728", metric.Select(p => (X(p.Epoch), Y(p.Value, metricMin, metricMax))).ToList());
        // Legend.
        sb.Append(Inv($"  <g class=\"legend\" transform=\"translate({left + 8} 14)\">\n"));
        sb.Append("    <line x1=\"0\" y1=\"0\" x2=\"18\" y2=\"0\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n");
        sb.Append("    <text x=\"22\" y=\"4\">training loss</text>\n");
        sb.Append("    <line x1=\"120\" y1=\"0\" x2=\"138\" y2=\"0\" stroke=\"#d62728\" stroke-width=\"2\"/>\n");
        sb.Append("    <text x=\"142\" y=\"4\">").Append(metric.Count > 0 ? metricLabel : metricLabel + " (not evaluated)").Append("</text>\n");
        sb.Append("  </g>\n");
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    private static void Series(StringBuilder sb, string name, string color, List<(double X, double Y)> points)
    {
        if (points.Count == 0) return;
        sb.Append($"  <polyline class=\"{name}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"")
            .Append(string.Join(" ", points.Select(p => $"{F(p.X)},{F(p.Y)}"))).Append("\"/>\n");
        sb.Append($"  <g class=\"{name}-markers\" fill=\"{color}\">\n");
        foreach (var (x, y) in points) sb.Append($"    <circle cx=\"{F(x)}\" cy=\"{F(y)}\" r=\"3\"/>\n");
        sb.Append("  </g>\n");
    }

    /// <summary>The axis range of <paramref name="values"/>: from 0 (or the minimum when it is negative) to a bit above the maximum; metrics in [0, 1] use [0, 1].</summary>
    private static (double Min, double Max) Range(IEnumerable<double> values, bool clampToUnit)
    {
        var list = values.ToList();
        if (list.Count == 0) return (0, 1);
        var min = Math.Min(0, list.Min());
        var max = list.Max();
        if (clampToUnit && min >= 0 && max <= 1) return (0, 1);
        if (max <= min) max = min + 1;
        return (min, max + (max - min) * 0.05);
    }

    private static JsonNode? Finite(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
    private static string Num(double v) => double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "";
    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
    private static string Tick(double v) => v.ToString(Math.Abs(v) >= 10 ? "0.#" : "0.###", CultureInfo.InvariantCulture);
    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
    private static string CsvCell(string s) => s.IndexOfAny([',', '"', '\n', '\r']) < 0 ? s : "\"" + s.Replace("\"", "\"\"") + "\"";
}
