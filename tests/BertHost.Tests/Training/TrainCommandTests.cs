using System.Text.Json.Nodes;
using BertHost.Tests.Plugins;
using BertHost.Tests.Support;
using BertHost.Core.Body;

namespace BertHost.Tests.Training;

/// <summary><c>berthost train</c> and <c>berthost eval</c> end to end on tiny-bert.</summary>
public sealed class TrainCommandTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-train-");

    public void Dispose() => _dir.Delete(recursive: true);

    private string Config(string? weights = null)
    {
        var path = Path.Combine(_dir.FullName, weights is null ? "deployment.yaml" : "trained.yaml");
        File.WriteAllText(path, $"""
            body:
              checkpoint: {ReferenceOutputs.ModelFolder("tiny-bert")}
            heads:
              - name: sentiment
                kind: text-classification
                plugin: {HeadTestSupport.ClassificationPlugin}
                labels: [negative, positive]
                options: {"{"} pooling: mean, dropout: 0, hidden_layers: [32] {"}"}
            {(weights is null ? "" : $"    weights: {weights}")}
            """);
        return path;
    }

    [Fact]
    public async Task Train_writes_the_head_which_then_serves_the_learned_labels_and_eval_prints_its_metrics()
    {
        var config = Config();
        var data = TrainingData.WriteJsonl(48, seed: 11, _dir.FullName);
        var train = await CliRunner.RunAsync("train", "--config", config, "--head", "sentiment", "--train", data, "--eval", data,
            "--epochs", "20", "--batch-size", "8", "--learning-rate", "0.01", "--seed", "7");
        Assert.True(train.ExitCode == 0, train.Error);
        Assert.Equal(20, train.OutLines.Length);
        var last = JsonNode.Parse(train.OutLines[^1])!;
        Assert.Equal(20, (int)last["epoch"]!);
        Assert.True((double)last["metrics"]!["accuracy"]! >= 0.85, train.Out);
        Assert.Matches(@"epoch 1/20 step 6/120 loss \d+\.\d{4} \d+ ex/s ETA \d+:\d\d", train.Error);

        var outDir = Path.Combine(_dir.FullName, "heads", "sentiment");
        Assert.True(File.Exists(Path.Combine(outDir, "head.json")));
        Assert.True(File.Exists(Path.Combine(outDir, "head.safetensors")));
        Assert.Contains(outDir, train.Error);
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "head.json")))!;
        Assert.StartsWith("sha256:", (string)manifest["body_fingerprint"]!);
        Assert.NotNull(manifest["metrics"]!["accuracy"]);

        var trained = Config(weights: outDir);
        // The served head gives the labels it learned: at least 85% of the training texts get their label back.
        var examples = File.ReadAllLines(data).Select(l => JsonNode.Parse(l)!).ToList();
        var predict = await CliRunner.RunAsync(["predict", "--config", trained, "--head", "sentiment", .. examples.Select(e => (string)e["text"]!)]);
        Assert.True(predict.ExitCode == 0, predict.Error);
        var predicted = predict.OutLines.Select(l => (string)JsonNode.Parse(l)!["label"]!).ToList();
        Assert.Equal(examples.Count, predicted.Count);
        var right = examples.Zip(predicted).Count(p => (string)p.First["label"]! == p.Second);
        Assert.True(right >= 0.85 * examples.Count, $"{right} of {examples.Count}");

        var eval = await CliRunner.RunAsync("eval", "--config", trained, "--head", "sentiment", "--data", data);
        Assert.True(eval.ExitCode == 0, eval.Error);
        var metrics = Assert.Single(eval.OutLines);
        Assert.True((double)JsonNode.Parse(metrics)!["accuracy"]! >= 0.85, metrics);
    }

    [Fact]
    public async Task Full_mode_writes_a_new_body_and_records_its_fingerprint()
    {
        var config = Config();
        var data = TrainingData.WriteJsonl(8, seed: 12, _dir.FullName);
        var outDir = Path.Combine(_dir.FullName, "full");
        var train = await CliRunner.RunAsync("train", "--config", config, "--head", "sentiment", "--train", data,
            "--mode", "full", "--epochs", "1", "--batch-size", "4", "--learning-rate", "0.001", "--out", outDir);
        Assert.True(train.ExitCode == 0, train.Error);
        Assert.True(File.Exists(Path.Combine(outDir, "body", "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(outDir, "body", "config.json")));
        using var newBody = Core.Body.BertBody.Load(Path.Combine(outDir, "body"));
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "head.json")))!;
        Assert.Equal(newBody.Fingerprint, (string)manifest["body_fingerprint"]!);
        Assert.NotEqual(HeadTestSupport.TinyBert.Fingerprint, newBody.Fingerprint);
    }

    [Fact]
    public async Task Checkpoint_dir_resumes_a_finished_run_and_rejects_one_with_other_options()
    {
        var config = Config();
        var data = TrainingData.WriteJsonl(8, seed: 13, _dir.FullName);
        var ckpt = Path.Combine(_dir.FullName, "ckpt");
        string[] args = ["train", "--config", config, "--head", "sentiment", "--train", data, "--epochs", "2", "--batch-size", "4",
            "--checkpoint-dir", ckpt, "--out", Path.Combine(_dir.FullName, "ck-out")];
        var first = await CliRunner.RunAsync(args);
        Assert.True(first.ExitCode == 0, first.Error);
        Assert.Contains($"berthost train: writing checkpoints to {ckpt}", first.Error);
        Assert.True(File.Exists(Path.Combine(ckpt, "checkpoint.json")));

        var again = await CliRunner.RunAsync(args);
        Assert.True(again.ExitCode == 0, again.Error);
        Assert.Contains($"berthost train: resuming from epoch 3 step 0 (2 epochs done) in {ckpt}", again.Error);
        Assert.Equal(2, first.OutLines.Length);
        Assert.Empty(again.Out);

        var other = await CliRunner.RunAsync([.. args, "--seed", "1"]);
        Assert.Equal(1, other.ExitCode);
        Assert.Contains($"the checkpoint in {ckpt} belongs to a different run: options.seed: checkpoint 42, this run 1", other.Error);
    }

    private string MultitaskConfig(string name, string? body = null, string? weights = null)
    {
        var path = Path.Combine(_dir.FullName, name);
        string Head(string head, string labels) => $"""
              - name: {head}
                kind: text-classification
                plugin: {HeadTestSupport.ClassificationPlugin}
                labels: [{labels}]
                options: {"{"} pooling: mean, dropout: 0, hidden_layers: [32] {"}"}
            {(weights is null ? "" : $"    weights: {Path.Combine(weights, head)}")}
            """;
        File.WriteAllText(path, $"""
            body:
              checkpoint: {body ?? ReferenceOutputs.ModelFolder("tiny-bert")}
            heads:
            {Head("sentiment", "negative, positive")}
            {Head("topic", "animal, place")}
            """);
        return path;
    }

    [Fact]
    public async Task Multitask_writes_one_body_and_every_head_which_then_serve_their_learned_labels()
    {
        var config = MultitaskConfig("multitask.yaml");
        var sentiment = TrainingData.WriteJsonl(32, seed: 14, _dir.FullName);
        var topic = TrainingData.WriteTopicJsonl(32, seed: 15, _dir.FullName);
        var outDir = Path.Combine(_dir.FullName, "mt");
        var train = await CliRunner.RunAsync("train", "--config", config, "--mode", "multitask",
            "--head", "sentiment", "--train", $"sentiment={sentiment}", "--eval", $"sentiment={sentiment}",
            "--head", "topic", "--train", $"topic={topic}", "--eval", $"topic={topic}",
            "--epochs", "20", "--batch-size", "8", "--learning-rate", "0.003", "--out", outDir);
        Assert.True(train.ExitCode == 0, train.Error);
        Assert.Equal(20, train.OutLines.Length);
        var last = JsonNode.Parse(train.OutLines[^1])!;
        Assert.True((double)last["metrics"]!["mean_primary"]! >= 0.85, train.Out);
        Assert.NotNull(last["tasks"]!["topic"]!["loss"]);

        using var newBody = Core.Body.BertBody.Load(Path.Combine(outDir, "body"));
        foreach (var head in new[] { "sentiment", "topic" })
        {
            var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, head, "head.json")))!;
            Assert.Equal(newBody.Fingerprint, (string)manifest["body_fingerprint"]!);
            Assert.NotNull(manifest["metrics"]!["accuracy"]);
        }
        var history = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "history.json")))!;
        Assert.Equal("mean_primary", (string)history["primary_metric"]!);
        Assert.Equal(["sentiment.train", "sentiment.eval", "topic.train", "topic.eval"], history["data"]!.AsArray().Select(d => (string)d!["role"]!));

        var trained = MultitaskConfig("mt-trained.yaml", Path.Combine(outDir, "body"), outDir);
        var texts = File.ReadAllLines(topic).Select(l => JsonNode.Parse(l)!).ToList();
        var predict = await CliRunner.RunAsync(["predict", "--config", trained, "--head", "topic", .. texts.Select(e => (string)e["text"]!)]);
        Assert.True(predict.ExitCode == 0, predict.Error);
        var right = texts.Zip(predict.OutLines).Count(p => (string)p.First["label"]! == (string)JsonNode.Parse(p.Second)!["label"]!);
        Assert.True(right >= 0.85 * texts.Count, $"{right} of {texts.Count}");

        var usage = await CliRunner.RunAsync("train", "--config", config, "--mode", "multitask", "--head", "sentiment", "--train", $"sentiment={sentiment}",
            "--head", "topic", "--train", $"other={topic}");
        Assert.Equal(2, usage.ExitCode);
        Assert.Contains("--train other=", usage.Error);
        Assert.Contains("'other' is not one of the --head options (sentiment, topic)", usage.Error);
    }

    [Fact]
    public async Task Malformed_training_data_is_one_line_with_file_and_line_and_exit_1()
    {
        var config = Config();
        var data = Path.Combine(_dir.FullName, "bad.jsonl");
        File.WriteAllText(data, """{"text": "happy dog", "label": "positive"}""" + "\n" + """{"text": "sad", "label": "maybe"}""" + "\n");
        var train = await CliRunner.RunAsync("train", "--config", config, "--head", "sentiment", "--train", data);
        Assert.Equal(1, train.ExitCode);
        var line = Assert.Single(train.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains($"{data}:2: label 'maybe'", line);
        Assert.Empty(train.Out);

        var outDir = Path.Combine(_dir.FullName, "skip");
        var skip = await CliRunner.RunAsync("train", "--config", config, "--head", "sentiment", "--train", data, "--skip-malformed",
            "--epochs", "1", "--out", outDir);
        Assert.True(skip.ExitCode == 0, skip.Error);
        Assert.Contains($"berthost train: skipped 1 malformed record in {data}", skip.Error);
        var history = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "history.json")))!;
        Assert.Equal(1, (int)history["skipped_records"]![data]!);
        Assert.Equal(1, (int)history["train_examples"]!);
    }
}
