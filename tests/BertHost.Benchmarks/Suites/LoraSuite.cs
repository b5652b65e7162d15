using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Benchmarks.Harness;
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
        long adapterBytes;
        using (var session = TrainingSession.Open(HostConfigLoader.Load(plainYaml), "plain", NullLoggerFactory.Instance))
        {
            var plainFolder = Path.Combine(options.WorkFolder, "lora-heads", "plain");
            session.Head.Save(plainFolder, new HeadSaveInfo(session.Body.Fingerprint, null));
            folders.Add(plainFolder);
            adapterBytes = 0;
            for (var i = 0; i < 10; i++)
            {
                using var adapter = LoraAdapter.Create(session.Body.Model, new LoraSettings(), seed: i);
                using (no_grad())
                    foreach (var pair in adapter.Pairs.Values) pair.B.normal_(0, 0.02);
                var folder = Path.Combine(options.WorkFolder, "lora-heads", $"lora{i}");
                session.Head.Save(folder, new HeadSaveInfo(session.Body.Fingerprint, null));
                LoraHeadFolder.Attach(folder, adapter);
                folders.Add(folder);
                adapterBytes = adapter.Bytes;
            }
        }
        var folderBytes = Directory.GetFiles(folders[1]).Where(f => Path.GetFileName(f).StartsWith("head.")).Sum(f => new FileInfo(f).Length);
        var plainFolderBytes = Directory.GetFiles(folders[0]).Where(f => Path.GetFileName(f).StartsWith("head.")).Sum(f => new FileInfo(f).Length);
        section.Add(new JsonObject { ["measure"] = "head_folder_bytes", ["lora"] = folderBytes, ["plain"] = plainFolderBytes, ["adapter_bytes"] = adapterBytes },
            "head folder (head.json + head.safetensors)", $"{folderBytes / 1024.0:F0} KiB (plain head {plainFolderBytes / 1024.0:F1} KiB)", "");

        // Serving: 9 heads deployed (plain + lora0..7); the same inputs to plain alone, then spread over all 9.
        var servingYaml = Path.Combine(options.WorkFolder, "lora-serving.yaml");
        File.WriteAllText(servingYaml, Yaml(new[] { Head("plain", folders[0]) }.Concat(Enumerable.Range(0, 8).Select(i => Head($"lora{i}", folders[i + 1])))));
        var inputs = lines.Select(t => JsonSerializer.SerializeToElement(new { text = t })).ToList();
        double plainRate, mixRate;
        {
            var engine = InferenceEngine.Start(HostConfigLoader.Load(servingYaml), NullLoggerFactory.Instance, new ServingMetrics());
            try
            {
                string[] heads = ["plain", .. Enumerable.Range(0, 8).Select(i => $"lora{i}")];
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
                for (var round = 0; round < 3; round++)
                {
                    plain.Add(Rate(_ => "plain"));
                    mix.Add(Rate(i => heads[i % heads.Length]));
                }
                plainRate = plain.Order().ElementAt(1);
                mixRate = mix.Order().ElementAt(1);
            }
            finally
            {
                engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }
        section.Add(new JsonObject { ["measure"] = "serving", ["plain_inputs_per_s"] = plainRate, ["mixed_inputs_per_s"] = mixRate, ["inputs"] = inputs.Count },
            $"serving {inputs.Count} SST-2 inputs: 8 LoRA heads + 1 plain (inputs spread over the 9) vs the plain head alone",
            $"{Report.F(mixRate, 0)} vs {Report.F(plainRate, 0)} inputs/s", $"{Report.F(mixRate / plainRate, 2)}×");

        // Memory: a deployment with no LoRA head, then one with 10 (each started, warmed, measured, disposed).
        long Rss(string yaml, string[] heads)
        {
            var engine = InferenceEngine.Start(HostConfigLoader.Load(yaml), NullLoggerFactory.Instance, new ServingMetrics());
            try
            {
                foreach (var head in heads) engine.PredictAsync(head, inputs.Take(16).ToList(), NoParameters, CancellationToken.None).GetAwaiter().GetResult();
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Core.Backends.NativeHeap.ReleaseFreeMemory();
                return ProcessRss();
            }
            finally
            {
                engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Core.Backends.NativeHeap.ReleaseFreeMemory();
            }
        }
        var tenYaml = Path.Combine(options.WorkFolder, "lora-ten.yaml");
        File.WriteAllText(tenYaml, Yaml(new[] { Head("plain", folders[0]) }.Concat(Enumerable.Range(0, 10).Select(i => Head($"lora{i}", folders[i + 1])))));
        var plainOnlyYaml = Path.Combine(options.WorkFolder, "lora-none.yaml");
        File.WriteAllText(plainOnlyYaml, Yaml([Head("plain", folders[0])]));
        // Control: the same 10 heads without adapters (plain head folders), so the head instances' own cost shows apart.
        var tenPlainYaml = Path.Combine(options.WorkFolder, "lora-ten-plain.yaml");
        File.WriteAllText(tenPlainYaml, Yaml(new[] { Head("plain", folders[0]) }.Concat(Enumerable.Range(0, 10).Select(i => Head($"lora{i}", folders[0])))));
        string[] eleven = ["plain", .. Enumerable.Range(0, 10).Select(i => $"lora{i}")];
        Rss(plainOnlyYaml, ["plain"]);
        var rss0 = Rss(plainOnlyYaml, ["plain"]);
        var rss10 = Rss(tenYaml, eleven);
        var rss10Plain = Rss(tenPlainYaml, eleven);
        var rss10Again = Rss(tenYaml, eleven);
        section.Add(new JsonObject { ["measure"] = "rss", ["rss_no_lora"] = rss0, ["rss_ten_lora"] = rss10, ["rss_ten_plain"] = rss10Plain, ["rss_ten_lora_again"] = rss10Again, ["adapter_bytes_total"] = 10 * adapterBytes },
            "RSS: plain head + 10 LoRA heads vs plain head only (control: + 10 plain heads; LoRA again)",
            $"{rss10 / 1048576.0:F1} vs {rss0 / 1048576.0:F1} MiB (+{(rss10 - rss0) / 1048576.0:F1} MiB; control +{(rss10Plain - rss0) / 1048576.0:F1} MiB; LoRA again +{(rss10Again - rss0) / 1048576.0:F1} MiB; adapters {10 * adapterBytes / 1048576.0:F1} MiB)", "");

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
        section.Notes.Add("Serving: each LoRA head's rows get its adapter's update in the one shared body pass (base projections once over all rows); an input sent to one head is one row either way. RSS after GC and a native-heap trim, each deployment started fresh in the same process.");
        return section;
    }

    private static long ProcessRss()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return Process.GetCurrentProcess().WorkingSet64;
    }
}
