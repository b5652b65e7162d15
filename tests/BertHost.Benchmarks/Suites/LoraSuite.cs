using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Benchmarks.Harness;
using BertHost.Benchmarks.Http;
using BertHost.Core.Body;
using BertHost.Core.Config;
using BertHost.Core.Lora;
using BertHost.Core.Serving;
using BertHost.Core.Training;
using Microsoft.Extensions.Logging.Abstractions;
using static TorchSharp.torch;

namespace BertHost.Benchmarks.Suites;

/// <summary>
/// LoRA heads on the shared body: serving throughput of 8 LoRA heads + 1 plain head (inputs spread over the 9 heads,
/// sent together) against the plain head alone on the same inputs; RSS of a deployment with 10 LoRA heads against
/// one with none; the training step of lora mode against full fine-tuning on the same batches.
/// </summary>
public sealed class LoraSuite(BenchOptions options)
{
    private static readonly JsonElement NoParameters = JsonDocument.Parse("{}").RootElement;

    public Section Run()
    {
        var model = options.Models[0];
        var section = new Section($"LoRA adapters ({BenchModels.Describe(model)}, r=8 on query+value, CPU)", "measure", "value", "ratio");
        var source = Path.Combine(Paths.Shared(), "data", "sst2", "train.tsv");
        if (!File.Exists(source))
        {
            section.Notes.Add($"skipped: {source} not found");
            return section;
        }
        Directory.CreateDirectory(options.WorkFolder);
        var modelFolder = BenchModels.Ensure(model, options.WorkFolder);
        var plugin = Path.Combine(Paths.RepoRoot(), "plugins", "BertHost.Heads.Classification");
        var lines = File.ReadLines(source).Skip(1).Take(options.Quick ? 128 : 512).Select(l => l.Split('\t')[0]).ToList();
        string Yaml(IEnumerable<string> heads) => $"""
            host:
              max_inputs_per_request: 256
            batching:
              max_queued_inputs: 100000
              max_wait_ms: 5
            body:
              checkpoint: {modelFolder}
              device: cpu
              dtype: float32
            heads:

            """ + string.Concat(heads);
        string Head(string name, string? weights) =>
            $"  - {{ name: {name}, kind: text-classification, plugin: {plugin}, labels: [negative, positive], options: {{ pooling: cls }}{(weights is null ? "" : $", weights: {weights}")} }}\n";

        // Head folders: one plain, ten with their own random adapters (B non-zero so every update is real work).
        var plainYaml = Path.Combine(options.WorkFolder, "lora-plain.yaml");
        File.WriteAllText(plainYaml, Yaml([Head("plain", null)]));
        var folders = new List<string>();
        var largeFolders = new List<string>();
        long adapterBytes, largeAdapterBytes;
        using (var session = TrainingSession.Open(HostConfigLoader.Load(plainYaml), "plain", NullLoggerFactory.Instance))
        {
            var plainFolder = Path.Combine(options.WorkFolder, "lora-heads", "plain");
            session.Head.Save(plainFolder, new HeadSaveInfo(session.Body.Fingerprint, null));
            folders.Add(plainFolder);
            // Ten head folders with their own random adapters of these settings; returns one adapter's bytes.
            long AdapterFolders(string prefix, LoraSettings settings, int firstSeed, List<string> into)
            {
                long bytes = 0;
                for (var i = 0; i < 10; i++)
                {
                    using var adapter = LoraAdapter.Create(session.Body.Model, settings, seed: firstSeed + i);
                    using (no_grad())
                        foreach (var pair in adapter.Pairs.Values) pair.B.normal_(0, 0.02);
                    var folder = Path.Combine(options.WorkFolder, "lora-heads", $"{prefix}{i}");
                    session.Head.Save(folder, new HeadSaveInfo(session.Body.Fingerprint, null));
                    LoraHeadFolder.Attach(folder, adapter);
                    into.Add(folder);
                    bytes = adapter.Bytes;
                }
                return bytes;
            }
            adapterBytes = AdapterFolders("lora", new LoraSettings(), 0, folders);
            // Large adapters (r=64 on every Linear, ~10 MB each) for the memory measure: their bytes stand well above
            // the few MiB two starts of the same deployment differ by, which the r=8 adapters' 288 KiB do not.
            largeAdapterBytes = AdapterFolders("large", new LoraSettings(64, 128, 0.1, [LoraSettings.AllLinear]), 100, largeFolders);
        }
        var folderBytes = Directory.GetFiles(folders[1]).Where(f => Path.GetFileName(f).StartsWith("head.")).Sum(f => new FileInfo(f).Length);
        var plainFolderBytes = Directory.GetFiles(folders[0]).Where(f => Path.GetFileName(f).StartsWith("head.")).Sum(f => new FileInfo(f).Length);
        section.Add(new JsonObject { ["measure"] = "head_folder_bytes", ["lora"] = folderBytes, ["plain"] = plainFolderBytes, ["adapter_bytes"] = adapterBytes },
            "head folder (head.json + head.safetensors)", $"{folderBytes / 1024.0:F0} KiB (plain head {plainFolderBytes / 1024.0:F1} KiB)", "");

        // Serving: plain + lora0..7 + plain0..7 (the plain head's folder again) deployed; the same inputs to plain alone,
        // spread over plain + the 8 LoRA heads, and, as the control, spread over plain + 8 plain heads (what spreading
        // inputs over 9 heads costs without any adapter).
        var servingYaml = Path.Combine(options.WorkFolder, "lora-serving.yaml");
        File.WriteAllText(servingYaml, Yaml(new[] { Head("plain", folders[0]) }.Concat(Enumerable.Range(0, 8).Select(i => Head($"lora{i}", folders[i + 1])))
            .Concat(Enumerable.Range(0, 8).Select(i => Head($"plain{i}", folders[0])))));
        var inputs = lines.Select(t => JsonSerializer.SerializeToElement(new { text = t })).ToList();
        double plainRate, mixRate, plainMixRate;
        {
            var engine = InferenceEngine.Start(HostConfigLoader.Load(servingYaml), NullLoggerFactory.Instance, new ServingMetrics());
            try
            {
                string[] heads = ["plain", .. Enumerable.Range(0, 8).Select(i => $"lora{i}")];
                string[] plainHeads = ["plain", .. Enumerable.Range(0, 8).Select(i => $"plain{i}")];
                double Rate(Func<int, string> headOf)
                {
                    // Requests of 8 inputs, all in flight together, so the scheduler batches across heads.
                    var chunks = inputs.Chunk(8).ToList();
                    var clock = Stopwatch.StartNew();
                    Task.WaitAll(chunks.Select((c, i) => engine.PredictAsync(headOf(i), c, NoParameters, CancellationToken.None)).ToArray());
                    return inputs.Count / clock.Elapsed.TotalSeconds;
                }
                Rate(_ => "plain");
                Rate(i => heads[i % heads.Length]);
                var plain = new List<double>();
                var mix = new List<double>();
                var plainMix = new List<double>();
                for (var round = 0; round < 3; round++)
                {
                    plain.Add(Rate(_ => "plain"));
                    mix.Add(Rate(i => heads[i % heads.Length]));
                    plainMix.Add(Rate(i => plainHeads[i % plainHeads.Length]));
                }
                plainRate = plain.Order().ElementAt(1);
                mixRate = mix.Order().ElementAt(1);
                plainMixRate = plainMix.Order().ElementAt(1);
            }
            finally
            {
                engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }
        section.Add(new JsonObject { ["measure"] = "serving", ["plain_inputs_per_s"] = plainRate, ["mixed_inputs_per_s"] = mixRate, ["plain_mix_inputs_per_s"] = plainMixRate, ["inputs"] = inputs.Count },
            $"serving {inputs.Count} SST-2 inputs: 8 LoRA heads + 1 plain (inputs spread over the 9) vs the plain head alone",
            $"{Report.F(mixRate, 0)} vs {Report.F(plainRate, 0)} inputs/s", $"{Report.F(mixRate / plainRate, 2)}×");
        section.Add(new JsonObject { ["measure"] = "serving_control" },
            "control: the same inputs spread over 9 plain heads vs the plain head alone (the cost of 9 heads without adapters)",
            $"{Report.F(plainMixRate, 0)} vs {Report.F(plainRate, 0)} inputs/s", $"{Report.F(plainMixRate / plainRate, 2)}×");

        // The body pass alone: the same 512 sentences in passes of 64, without adapters and with 8 adapters on 8 row ranges.
        {
            using var body = BertBody.Load(modelFolder, new BodyOptions { Device = "cpu", PrepackWeights = true });
            var adapters = Enumerable.Range(1, 8).Select(i => LoraHeadFolder.Read(folders[i], body.Model)!).ToList();
            try
            {
                var batches = lines.Chunk(64).Select(c => body.Encode(c)).ToList();
                var stats = Measure.RoundRobin(
                [
                    new Contender("plain", () => { foreach (var b in batches) { using var o = body.ForwardSkippingPadding(b); } }),
                    new Contender("lora", () =>
                    {
                        foreach (var b in batches)
                        {
                            var per = b.BatchSize / adapters.Count;
                            using var pass = LoraPass.Enter(body.Model, adapters.Select((a, i) => new LoraSegment(a, i * per, i == adapters.Count - 1 ? b.BatchSize - i * per : per)).ToList());
                            using var o = body.ForwardSkippingPadding(b);
                        }
                    }),
                ], 1, options.Quick ? 2 : 4, 1);
                section.Add(new JsonObject { ["measure"] = "body_pass", ["plain_seconds"] = stats["plain"].Median, ["lora_seconds"] = stats["lora"].Median },
                    $"body passes alone over the same {lines.Count} sentences (passes of 64): 8 adapters on 8 row ranges vs none",
                    $"{Report.F(stats["lora"].Median * 1000, 0)} vs {Report.F(stats["plain"].Median * 1000, 0)} ms", $"{Report.F(stats["plain"].Median / stats["lora"].Median, 2)}× the rate");
            }
            finally
            {
                foreach (var a in adapters) a.Dispose();
            }
        }

        // Memory: each deployment as its own `berthost serve` process (what an operator runs), every head asked once over
        // HTTP, then read once idle (the host trims its native heap after 1 s without work). Rounds interleave the three
        // deployments so drift on the machine hits each alike; the median of the rounds is the figure. Anonymous memory
        // (RssAnon) is what a tensor adds; VmRSS also counts file-backed code pages, touched differently from run to run.
        var plainOnlyYaml = Yaml([Head("plain", folders[0])]);
        // Control: the same 10 heads without adapters (plain head folders), so the head instances' own cost shows apart.
        var tenPlainYaml = Yaml(new[] { Head("plain", folders[0]) }.Concat(Enumerable.Range(0, 10).Select(i => Head($"lora{i}", folders[0]))));
        string[] eleven = ["plain", .. Enumerable.Range(0, 10).Select(i => $"lora{i}")];
        // One adapter among the same 11 heads: what serving LoRA at all costs (code paths, kernels for the small GEMMs),
        // so ten − one is what 9 more adapters cost.
        string One(List<string> adapters) => Yaml(new[] { Head("plain", folders[0]), Head("lora0", adapters[0]) }.Concat(Enumerable.Range(1, 9).Select(i => Head($"lora{i}", folders[0]))));
        string Ten(List<string> adapters) => Yaml(new[] { Head("plain", folders[0]) }.Concat(Enumerable.Range(0, 10).Select(i => Head($"lora{i}", adapters[i]))));
        var deployments = new (string Name, string Yaml, string[] Heads)[]
        {
            ("none", plainOnlyYaml, ["plain"]), ("ten_plain", tenPlainYaml, eleven),
            ("one_lora", One(folders[1..]), eleven), ("ten_lora", Ten(folders[1..]), eleven),
            ("one_large", One(largeFolders), eleven), ("ten_large", Ten(largeFolders), eleven),
        };
        var rounds = options.Quick ? 2 : 5;
        var samples = deployments.ToDictionary(d => d.Name, _ => new List<(long Anon, long Rss)>());
        for (var round = 0; round < rounds; round++)
            foreach (var (name, yaml, heads) in deployments)
                samples[name].Add(IdleMemory(Path.Combine(options.WorkFolder, $"lora-rss-{name}.yaml"), yaml, heads, lines).GetAwaiter().GetResult());
        long Median(string name) => samples[name].Select(s => s.Anon).Order().ElementAt(samples[name].Count / 2);
        string MiB(long bytes) => $"{bytes / 1048576.0:+0.0;-0.0} MiB";
        var headsAnon = Median("ten_plain") - Median("none");
        var spread = deployments.Max(d => samples[d.Name].Max(s => s.Anon) - samples[d.Name].Min(s => s.Anon));
        section.Add(new JsonObject
            {
                ["measure"] = "rss", ["rounds"] = rounds, ["adapter_bytes"] = adapterBytes, ["large_adapter_bytes"] = largeAdapterBytes,
                ["samples"] = new JsonObject(samples.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)new JsonArray(p.Value.Select(s => (JsonNode?)new JsonObject { ["rss_anon"] = s.Anon, ["vm_rss"] = s.Rss }).ToArray())))),
            },
            $"memory, 11 heads served (berthost serve, idle, RssAnon, median of {rounds} fresh starts each): the 10 heads themselves, without adapters",
            $"{MiB(headsAnon)}; largest spread between starts of one deployment {spread / 1048576.0:F1} MiB", "");
        foreach (var (kind, bytes) in new[] { ("lora", adapterBytes), ("large", largeAdapterBytes) })
        {
            var nine = Median($"ten_{kind}") - Median($"one_{kind}");
            var first = Median($"one_{kind}") - Median("ten_plain");
            section.Add(new JsonObject { ["measure"] = $"rss_{kind}", ["nine_more_adapters"] = nine, ["first_adapter"] = first, ["adapter_bytes"] = bytes },
                $"memory: 9 more adapters of {bytes / 1024.0:N0} KiB ({(kind == "lora" ? "r=8, query+value" : "r=64, all-linear")}): 10 vs 1 adapter among the same 11 heads",
                $"{MiB(nine)} for {9 * bytes / 1048576.0:F1} MiB of adapters (the first adapter: {MiB(first)})",
                $"{Report.F((double)nine / (9 * bytes), 2)}× adapter bytes");
        }

        // Training step: lora vs full on the same batches (EvalEveryEpoch off; the first step warms up).
        var count = options.Quick ? 64 : 160;
        var data = Path.Combine(options.WorkFolder, $"sst2-lora-{count}.tsv");
        File.WriteAllLines(data, File.ReadLines(source).Take(count + 1));
        var stepSeconds = new Dictionary<TrainingMode, double>();
        foreach (var mode in new[] { TrainingMode.Lora, TrainingMode.Full })
        {
            using var session = TrainingSession.Open(HostConfigLoader.Load(plainYaml), "plain", NullLoggerFactory.Instance);
            var examples = session.Head.Training!.ReadExamples(data, new TrainingDataOptions()).ToList();
            var trainer = new Trainer(session.Body, session.Head, new TrainingOptions { Mode = mode, Epochs = 2, BatchSize = 32, EvalEveryEpoch = false });
            var result = trainer.Train(examples, null);
            foreach (var adapter in trainer.Adapters.Values) adapter.Dispose();
            stepSeconds[mode] = result.Epochs[^1].Seconds / Math.Ceiling(count / 32.0);
        }
        section.Add(new JsonObject { ["measure"] = "training_step", ["lora_seconds"] = stepSeconds[TrainingMode.Lora], ["full_seconds"] = stepSeconds[TrainingMode.Full] },
            $"training step, batch 32 (epoch 2 of {count} SST-2 sentences): lora vs full",
            $"{Report.F(stepSeconds[TrainingMode.Lora], 2)} vs {Report.F(stepSeconds[TrainingMode.Full], 2)} s", $"{Report.F(stepSeconds[TrainingMode.Lora] / stepSeconds[TrainingMode.Full], 2)}×");
        section.Notes.Add("Serving: each LoRA head's rows get its adapter's update in the one shared body pass (base projections once over all rows); an input sent to one head is one row either way.");
        return section;
    }

    /// <summary>RssAnon and VmRSS of a fresh <c>berthost serve</c> of <paramref name="yaml"/> once every head has answered and the host is idle.</summary>
    private static async Task<(long Anon, long Rss)> IdleMemory(string configPath, string yaml, string[] heads, IReadOnlyList<string> texts)
    {
        using var server = ServerProcess.Start(configPath, yaml);
        using var http = new HttpClient { BaseAddress = server.Url };
        var body = JsonSerializer.Serialize(new { inputs = texts.Take(16).ToArray() });
        foreach (var head in heads)
        {
            using var response = await http.PostAsync($"/v1/heads/{head}/predict", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
            response.EnsureSuccessStatusCode();
        }
        await server.IdleResidentBytesAsync();
        return (server.StatusBytes("RssAnon"), server.StatusBytes("VmRSS"));
    }
}
