using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Benchmarks.Harness;
using BertHost.Benchmarks.Http;

namespace BertHost.Benchmarks.Suites;

/// <summary>
/// Resident memory of <c>berthost serve</c>: one body with 1 head vs 10 heads (the difference should be the heads'
/// own parameters, not copies of the body), and RSS sampled over a long stream of requests (a leak shows as growth).
/// </summary>
public sealed class MemorySuite(BenchOptions options)
{
    private const int HeadHidden = 1024;

    public async Task<Section> RunAsync()
    {
        var model = options.Models[0];
        var folder = BenchModels.Ensure(model, options.WorkFolder);
        var hidden = BenchModels.Config(model, 30522).HiddenSize;
        var section = new Section("Memory (berthost serve, resident set size)", "measurement", "value", "detail");
        Directory.CreateDirectory(options.WorkFolder);
        var sentences = Paths.Sst2Sentences() ?? ["a gripping, funny film", "the worst movie of the year"];

        var rss = new Dictionary<int, long>();
        foreach (var heads in new[] { 1, 10 })
        {
            using var server = ServerProcess.Start(Path.Combine(options.WorkFolder, $"memory-{heads}.yaml"), Deployments.ClassifierHeadsYaml(folder, heads, HeadHidden));
            var load = new LoadGenerator(server.Url, 4);
            // Every head serves some requests first, so lazily allocated buffers are in both figures.
            await load.RunAsync((c, n) => [($"/v1/heads/head{(c + n) % heads}/predict", $"{{\"inputs\": [{JsonSerializer.Serialize(sentences[n % sentences.Count])}]}}")],
                TimeSpan.Zero, TimeSpan.FromDays(1), maxOperations: 200);
            rss[heads] = await server.IdleResidentBytesAsync();
        }
        // Linear(hidden, 1024) + Linear(1024, 2), float32.
        long headBytes = ((long)hidden * HeadHidden + HeadHidden + HeadHidden * 2 + 2) * 4;
        var delta = rss[10] - rss[1];
        section.Add(new JsonObject { ["rss_1_head_bytes"] = rss[1], ["rss_10_heads_bytes"] = rss[10], ["head_parameter_bytes"] = headBytes },
            $"RSS, {BenchModels.Describe(model)} body + 1 head", Mb(rss[1]), "after 200 requests, idle");
        section.Add(new JsonObject { ["rss_delta_bytes"] = delta, ["expected_parameter_bytes_9_heads"] = 9 * headBytes },
            "RSS, + 9 more heads (10 in all)", $"{Mb(rss[10])} (+{Mb(delta)})",
            $"9 heads' own parameters: {Mb(9 * headBytes)} (classifier with a {HeadHidden}-unit hidden layer each); the rest is per-head runtime overhead");

        // Leak check: the tiny test body keeps 100k requests affordable; leaks are per request, not per FLOP.
        var requests = options.Quick ? 10_000 : 100_000;
        var tiny = Path.Combine(Paths.RepoRoot(), "tests", "BertHost.Tests", "Fixtures", "models", "tiny-bert");
        using (var server = ServerProcess.Start(Path.Combine(options.WorkFolder, "memory-leak.yaml"), Deployments.ClassifierHeadsYaml(tiny, 1, 16)))
        {
            var load = new LoadGenerator(server.Url, 16);
            var samples = new List<(int Done, long Rss)>();
            var chunk = requests / 10;
            for (var i = 0; i <= 10; i++)
            {
                if (i > 0)
                    await load.RunAsync((c, n) => [("/v1/heads/head0/predict", $"{{\"inputs\": [{JsonSerializer.Serialize(sentences[(c * 131 + n) % sentences.Count])}]}}")],
                        TimeSpan.Zero, TimeSpan.FromDays(1), maxOperations: chunk);
                samples.Add((i * chunk, await server.IdleResidentBytesAsync()));
            }
            var afterWarm = samples[1].Rss;
            var last = samples[^1].Rss;
            section.Add(new JsonObject
            {
                ["requests"] = requests,
                ["rss_samples"] = new JsonArray(samples.Select(s => (JsonNode?)new JsonObject { ["requests"] = s.Done, ["rss_bytes"] = s.Rss }).ToArray()),
            },
                $"RSS over {requests:N0} requests (tiny test body, 16 clients)",
                $"{Mb(samples[0].Rss)} at start → {Mb(afterWarm)} after {chunk:N0} → {Mb(last)} after {requests:N0}",
                $"growth after the first {chunk:N0}: {Mb(last - afterWarm)} ({(double)(last - afterWarm) / (requests - chunk) :F1} bytes/request)");
        }
        section.Notes.Add("Every RSS figure is read after 2 s without requests: the host returns its native heap's free memory to the OS after 1 s idle (while busy it keeps freed activation buffers for the next pass).");
        return section;
    }

    private static string Mb(long bytes) => $"{bytes / 1048576.0:F1} MiB";
}
