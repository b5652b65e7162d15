using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Benchmarks.Harness;
using BertHost.Benchmarks.Http;

namespace BertHost.Benchmarks.Suites;

/// <summary>
/// End-to-end HTTP against <c>berthost serve</c> (a child process): closed-loop clients at 1, 8 and 64 concurrency,
/// each request one SST-2 sentence, for one head, for four heads in one <c>POST /v1/predict</c>, and for the same four
/// answers fetched as four single-head requests sent at once.
/// </summary>
public sealed class HttpSuite(BenchOptions options)
{
    public async Task<Section> RunAsync()
    {
        var model = options.Models[0];
        var section = new Section($"HTTP end to end ({BenchModels.Describe(model)}, float32, CPU)",
            "scenario", "clients", "operations/s", "p50 ms", "p95 ms", "p99 ms", "body passes per operation");
        var sentences = Paths.Sst2Sentences() ?? ["a gripping, funny film", "the worst movie of the year", "not bad at all"];
        Directory.CreateDirectory(options.WorkFolder);
        using var server = ServerProcess.Start(Path.Combine(options.WorkFolder, "http.yaml"), Deployments.FourHeadYaml(BenchModels.Ensure(model, options.WorkFolder)));
        using var http = new HttpClient { BaseAddress = server.Url };

        string Input(int client, int n) => JsonSerializer.Serialize(sentences[(client * 7919 + n * 31) % sentences.Count]);
        var scenarios = new (string Name, Func<int, int, (string, string)[]> Operation)[]
        {
            ("1 head", (c, n) => [("/v1/heads/sentiment/predict", $"{{\"inputs\": [{Input(c, n)}]}}")]),
            ("4 heads, one POST /v1/predict", (c, n) => [("/v1/predict", $"{{\"heads\": [{string.Join(", ", Deployments.FourHeads.Select(h => $"\"{h}\""))}], \"inputs\": [{Input(c, n)}]}}")]),
            ("4 heads, 4 single-head requests at once", (c, n) => Deployments.FourHeads.Select(h => ($"/v1/heads/{h}/predict", $"{{\"inputs\": [{Input(c, n)}]}}")).ToArray()),
        };
        var duration = TimeSpan.FromSeconds(options.Quick ? 4 : 10);
        foreach (var clients in new[] { 1, 8, 64 })
        {
            foreach (var (name, operation) in scenarios)
            {
                var load = new LoadGenerator(server.Url, clients);
                var passesBefore = await BodyPasses(http);
                var result = await load.RunAsync(operation, TimeSpan.FromSeconds(1), duration);
                var passes = await BodyPasses(http) - passesBefore;
                var stats = Stats.Of(result.LatenciesSeconds);
                var rate = result.Operations / result.Seconds;
                section.Add(new JsonObject
                {
                    ["scenario"] = name,
                    ["clients"] = clients,
                    ["operations_per_second"] = rate,
                    ["operations"] = result.Operations,
                    ["p50_ms"] = stats.Median * 1000,
                    ["p95_ms"] = stats.P95 * 1000,
                    ["p99_ms"] = stats.P99 * 1000,
                    ["body_passes_including_warmup"] = passes,
                },
                    name, clients.ToString(), Report.F(rate, 1), Report.F(stats.Median * 1000, 1), Report.F(stats.P95 * 1000, 1), Report.F(stats.P99 * 1000, 1),
                    Report.F((double)passes / result.Operations, 2));
            }
        }
        section.Notes.Add($"Each cell: 1 s warm-up, then {duration.TotalSeconds:F0} s of closed-loop clients (each sends its next operation when the previous one is answered); an operation is one input's answer from every head it asks for. Body passes per operation counts /v1/body's body_passes over warm-up + measurement, so it is an upper bound; below 1 means the scheduler batched concurrent inputs into shared passes. The load generator runs on the same machine as the host and takes part of its CPU.");
        return section;
    }

    private static async Task<long> BodyPasses(HttpClient http)
    {
        var body = JsonNode.Parse(await http.GetStringAsync("/v1/body"))!;
        return body["body_passes"]!.GetValue<long>();
    }
}
