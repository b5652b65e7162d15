using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Benchmarks.Harness;
using BertHost.Benchmarks.Http;
using BertHost.Core.Config;
using BertHost.Core.Training;
using Microsoft.Extensions.Logging.Abstractions;

namespace BertHost.Benchmarks.Suites;

/// <summary>
/// Training on SST-2 sentences with the host's own trainer: head-only epochs with and without the feature cache (the
/// cache is filled in epoch 1, so epoch 2 shows its effect), and full fine-tuning steps per second.
/// </summary>
public sealed class TrainingSuite(BenchOptions options)
{
    public Section Run()
    {
        var model = options.Models[0];
        var section = new Section($"Training ({BenchModels.Describe(model)}, batch 16, CPU)", "mode", "examples", "epoch 1 s", "epoch 2 s", "rate");
        var source = Path.Combine(Paths.Shared(), "data", "sst2", "train.tsv");
        if (!File.Exists(source))
        {
            section.Notes.Add($"skipped: {source} not found");
            return section;
        }
        Directory.CreateDirectory(options.WorkFolder);
        var headCount = options.Quick ? 512 : 2048;
        var fullCount = options.Quick ? 32 : 96;
        var configPath = Path.Combine(options.WorkFolder, "training.yaml");
        File.WriteAllText(configPath, Deployments.FourHeadYaml(BenchModels.Ensure(model, options.WorkFolder)));
        var config = HostConfigLoader.Load(configPath);
        var all = File.ReadLines(source).ToList();

        foreach (var (mode, cache, count) in new[] { (TrainingMode.Head, true, headCount), (TrainingMode.Head, false, headCount), (TrainingMode.Full, false, fullCount) })
        {
            var data = Path.Combine(options.WorkFolder, $"sst2-{count}.tsv");
            File.WriteAllLines(data, all.Take(count + 1));
            using var session = TrainingSession.Open(config, "sentiment", NullLoggerFactory.Instance);
            var examples = session.Head.Training!.ReadExamples(data, new TrainingDataOptions()).ToList();
            var epochs = mode == TrainingMode.Full ? 1 : 2;
            var trainer = new Trainer(session.Body, session.Head, new TrainingOptions { Mode = mode, Epochs = epochs, BatchSize = 16, UseFeatureCache = cache, EvalEveryEpoch = false });
            var result = trainer.Train(examples);
            var seconds = result.Epochs.Select(e => e.Seconds).ToArray();
            var steps = Math.Ceiling(count / 16.0);
            var name = mode == TrainingMode.Full ? "full fine-tuning" : cache ? "head only, feature cache" : "head only, no cache";
            var rate = mode == TrainingMode.Full ? $"{Report.F(steps / seconds[0], 2)} steps/s" : $"{Report.F(count / seconds[^1], 0)} examples/s in epoch {seconds.Length}";
            section.Add(new JsonObject { ["mode"] = name, ["examples"] = count, ["epoch_seconds"] = new JsonArray(seconds.Select(s => (JsonNode?)s).ToArray()), ["steps_per_epoch"] = steps },
                name, count.ToString(), Report.F(seconds[0], 1), seconds.Length > 1 ? Report.F(seconds[1], 2) : "", rate);
        }
        section.Notes.Add("Head mode trains the sentiment head (Linear over [CLS]) on a frozen body; with the cache, epoch 1 runs the body once per example and stores its outputs, later epochs cost only the head. Full mode trains every body parameter (AdamW).");
        return section;
    }
}
