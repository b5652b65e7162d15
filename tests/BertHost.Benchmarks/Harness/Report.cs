using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace BertHost.Benchmarks.Harness;

/// <summary>One suite's results: a Markdown table plus the same figures as JSON records.</summary>
public sealed class Section(string title, params string[] headers)
{
    public string Title { get; } = title;
    public string[] Headers { get; } = headers;
    public List<string[]> Rows { get; } = [];
    public JsonArray Records { get; } = [];
    public List<string> Notes { get; } = [];

    public void Add(JsonObject record, params string[] cells)
    {
        if (cells.Length != Headers.Length) throw new ArgumentException($"{Title}: {cells.Length} cells for {Headers.Length} columns");
        Rows.Add(cells);
        Records.Add(record);
    }
}

/// <summary>Writes <c>bench-results/latest.md</c> and <c>latest.json</c> and prints the Markdown.</summary>
public static class Report
{
    public static string F(double value, int decimals = 1) => value.ToString("F" + decimals, CultureInfo.InvariantCulture);

    public static JsonObject Machine(int threads) => new()
    {
        ["cpu"] = CpuModel(),
        ["logical_cpus"] = Environment.ProcessorCount,
        ["threads"] = threads,
        ["omp_wait_policy"] = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "default (active)",
        ["cpu_flags"] = string.Join(" ", CpuFlags()),
        ["os"] = RuntimeInformation.OSDescription,
        ["dotnet"] = RuntimeInformation.FrameworkDescription,
        ["torchsharp"] = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(),
        ["onnxruntime"] = typeof(Microsoft.ML.OnnxRuntime.InferenceSession).Assembly.GetName().Version?.ToString(),
        ["git_commit"] = Git("rev-parse --short HEAD"),
        ["date_utc"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture),
    };

    public static string Write(string folder, JsonObject machine, string command, IReadOnlyList<Section> sections)
    {
        var md = new StringBuilder();
        md.AppendLine($"Machine: {machine["cpu"]}, {machine["logical_cpus"]} logical CPUs, {machine["threads"]} threads for libtorch and ONNX Runtime (OMP_WAIT_POLICY {machine["omp_wait_policy"]}; ORT spinning {(ThreadPolicy.PassiveWaiting ? "off" : "on")}); {machine["os"]}; {machine["dotnet"]}; TorchSharp {machine["torchsharp"]}, ONNX Runtime {machine["onnxruntime"]}; commit {machine["git_commit"]}, {machine["date_utc"]}.");
        md.AppendLine();
        md.AppendLine($"Command: `{command}`");
        foreach (var s in sections)
        {
            md.AppendLine();
            md.AppendLine($"### {s.Title}");
            md.AppendLine();
            md.AppendLine("| " + string.Join(" | ", s.Headers) + " |");
            md.AppendLine("|" + string.Concat(s.Headers.Select(_ => " --- |")));
            foreach (var row in s.Rows) md.AppendLine("| " + string.Join(" | ", row) + " |");
            foreach (var note in s.Notes)
            {
                md.AppendLine();
                md.AppendLine(note);
            }
        }
        var json = new JsonObject
        {
            ["machine"] = machine,
            ["command"] = command,
            ["suites"] = new JsonObject(sections.Select(s => KeyValuePair.Create(s.Title, (JsonNode?)new JsonObject
            {
                ["records"] = s.Records.DeepClone(),
                ["notes"] = new JsonArray(s.Notes.Select(n => (JsonNode?)n).ToArray()),
            }))),
        };
        Directory.CreateDirectory(folder);
        var text = md.ToString();
        WriteAtomically(Path.Combine(folder, "latest.md"), text);
        WriteAtomically(Path.Combine(folder, "latest.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return text;
    }

    private static void WriteAtomically(string path, string text)
    {
        var temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    private static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line?.Split(':', 2)[1].Trim() ?? RuntimeInformation.ProcessArchitecture.ToString();
        }
        catch (IOException)
        {
            return RuntimeInformation.ProcessArchitecture.ToString();
        }
    }

    /// <summary>The CPU features that decide which kernels libtorch and ONNX Runtime pick.</summary>
    private static IEnumerable<string> CpuFlags()
    {
        string[] wanted = ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile"];
        try
        {
            var flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal))?.Split(':', 2)[1].Split(' ') ?? [];
            return wanted.Where(flags.Contains);
        }
        catch (IOException)
        {
            return [];
        }
    }

    private static string Git(string args)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("git", args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var output = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 ? output : "unknown";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }
}
