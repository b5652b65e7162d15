using System.Text.Json.Nodes;
using BertHost.Core.Bert;
using BertHost.Core.Jobs;
using BertHost.Tests.Support;
using BertHost.Tests.Training;
using BertHost.Core.Body;

namespace BertHost.Tests.Jobs;

/// <summary>
/// <c>pretrain</c> jobs over HTTP on the tiny corpus fixture with a tiny fresh model: progress, output, promotion,
/// cancel, resume after a kill, validation. Seeded runs compared bit for bit, so alone (torch has one generator).
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class PretrainJobTests
{
    private const string Corpus = JobsHost.CorpusName;
    private static readonly string[] Texts = ["happy dog", "war in the city"];

    /// <summary>A small, fast run; <paramref name="more"/> adds or overrides fields.</summary>
    private static Dictionary<string, object?> Job(params (string Key, object? Value)[] more)
    {
        var job = new Dictionary<string, object?>
        {
            ["kind"] = "pretrain", ["corpus"] = new[] { Corpus }, ["config_size"] = "tiny", ["seq_len"] = 16, ["batch_size"] = 2,
            ["eval_sequences"] = 2, ["max_steps"] = 12, ["learning_rate"] = 0.005, ["warmup"] = 1, ["log_every"] = 2,
            ["eval_every"] = 6, ["seed"] = 1,
        };
        foreach (var (key, value) in more) job[key] = value;
        return job;
    }

    [Fact]
    public async Task A_pretrain_job_reports_progress_lowers_the_loss_and_with_auto_body_swap_serves_its_body_and_stales_old_heads()
    {
        await using var host = await JobsHost.StartAsync();
        var oldBody = host.Engine.Body.Fingerprint;
        var (status, queued) = await host.PostAsync("/v1/jobs", Job());
        Assert.True(status == 202, queued.ToJsonString());
        var id = (string)queued["id"]!;
        Assert.Equal("pretrain", (string)queued["kind"]!);
        Assert.Equal(12, (int)queued["total_steps"]!);
        Assert.Equal("tiny", (string)queued["options"]!["config_size"]!);
        // A fresh body speaks the deployment's vocabulary (the record says so without the served folder's path).
        Assert.Equal("served", (string)queued["options"]!["vocab"]!);
        Assert.Equal(1, (int)queued["options"]!["warmup"]!);
        Assert.Equal(0.15, (double)queued["options"]!["mask_prob"]!);
        var corpus = Assert.Single(queued["data"]!.AsArray())!;
        Assert.Equal(("corpus", Corpus, null), ((string)corpus["role"]!, (string)corpus["name"]!, corpus["path"]));

        var job = await host.WaitForStateAsync(id, JobStates.Succeeded);
        Assert.Equal(12, (int)job["step"]!);
        Assert.True((double)job["tokens_per_second"]! > 0);
        Assert.Equal("max steps reached", (string)job["stop_reason"]!);
        var curve = job["curve"]!.AsArray();
        Assert.Equal([2, 4, 6, 8, 10, 12], curve.Select(p => (int)p!["step"]!));
        Assert.Equal([6, 12], curve.Where(p => p!["eval_loss"] is not null).Select(p => (int)p!["step"]!));
        Assert.All(curve.Where(p => p!["eval_loss"] is not null), p => Assert.InRange((double)p!["masked_accuracy"]!, 0, 1));
        Assert.True((double)curve[^1]!["train_loss"]! < (double)curve[0]!["train_loss"]! - 0.5, curve.ToJsonString());

        var folder = host.JobFolder(id);
        foreach (var file in new[] { "history.json", "history.csv", "history.svg", "body/config.json", "body/vocab.txt", "body/model.safetensors" })
            Assert.True(File.Exists(Path.Combine(folder, file)), file);
        Assert.False(Directory.Exists(Path.Combine(folder, "checkpoint")));
        Assert.StartsWith("step,loss,seconds,", File.ReadAllText(Path.Combine(folder, "history.csv")));
        using (var body = BertBody.Load(Path.Combine(folder, "body")))
        {
            Assert.Equal(2, body.Config.NumHiddenLayers);
            Assert.Equal((string)job["output_fingerprint"]!, body.Fingerprint);
        }

        // body_swap auto: the new body serves, and "fixed" (trained on the old one) is stale.
        Assert.True((bool)job["promoted"]!);
        Assert.Equal((string)job["output_fingerprint"]!, (string)(await host.GetAsync("/v1/body")).Body["fingerprint"]!);
        var (_, fixedHead) = await host.GetAsync("/v1/heads/fixed");
        Assert.Equal("stale", (string)fixedHead["state"]!);
        Assert.Equal($"head fixed was trained on body {oldBody}, the served body is {(string)job["output_fingerprint"]!}; re-train it", (string)fixedHead["error"]!);
    }

    [Fact]
    public async Task A_job_from_the_served_body_copies_it_and_with_manual_body_swap_serves_only_when_promoted()
    {
        await using var host = await JobsHost.StartAsync("body_swap: manual");
        var served = host.Engine.Body.Fingerprint;
        var before = await host.PredictAsync("fixed", Texts);
        var id = await host.SubmitAsync(Job(("config_size", null), ("from", "served"), ("max_steps", 4), ("eval_every", 0)));
        var job = await host.WaitForStateAsync(id, JobStates.Succeeded);
        Assert.Equal(served, (string)job["body_fingerprint"]!);
        Assert.Equal("served", (string)job["options"]!["from"]!);
        Assert.False((bool)job["promoted"]!);
        Assert.NotEqual(served, (string)job["output_fingerprint"]!);
        // The served body and its heads are exactly as they were.
        Assert.Equal(served, host.Engine.Body.Fingerprint);
        Assert.Equal(served, Core.Checkpoints.BodyFingerprint.Compute(host.Engine.Body.Model, Path.Combine(host.Engine.Body.Folder, "vocab.txt")));
        Assert.Equal(before, await host.PredictAsync("fixed", Texts));

        var (status, promoted) = await host.PostAsync($"/v1/jobs/{id}/promote", new { });
        Assert.True(status == 200, promoted.ToJsonString());
        Assert.Equal((string)job["output_fingerprint"]!, host.Engine.Body.Fingerprint);
        await host.RestartAsync();
        Assert.Equal((string)job["output_fingerprint"]!, host.Engine.Body.Fingerprint);
    }

    [Fact]
    public async Task Cancelling_a_running_pretrain_job_stops_it_and_leaves_the_served_body_untouched()
    {
        await using var host = await JobsHost.StartAsync();
        var served = host.Engine.Body.Fingerprint;
        var id = await host.SubmitAsync(Job(("max_steps", 100_000), ("eval_every", 0), ("checkpoint_every", 0)));
        await host.WaitAsync(id, j => (string)j["state"]! == JobStates.Running && (int?)j["step"] > 2);
        var (status, cancelling) = await host.DeleteAsync($"/v1/jobs/{id}");
        Assert.Equal(202, status);
        Assert.True((bool)cancelling["cancel_requested"]!);
        var job = await host.WaitForStateAsync(id, JobStates.Cancelled);
        Assert.False((bool)job["promoted"]!);
        Assert.True((int)job["step"]! < 100_000);
        Assert.False(Directory.Exists(Path.Combine(host.JobFolder(id), "body")));
        Assert.False(Directory.Exists(Path.Combine(host.JobFolder(id), "checkpoint")));
        Assert.Equal(served, host.Engine.Body.Fingerprint);
        Assert.Equal("ready", (string)(await host.GetAsync("/v1/heads/fixed")).Body["state"]!);
    }

    [Fact]
    public async Task A_pretrain_job_killed_mid_run_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_one()
    {
        await using var host = await JobsHost.StartAsync("body_swap: manual");
        var job = Job(("max_steps", 8), ("log_every", 1), ("eval_every", 4), ("checkpoint_every", 2));
        var reference = await host.SubmitAsync(job);
        var uninterrupted = await host.WaitForStateAsync(reference, JobStates.Succeeded);

        var killed = await host.SubmitAndKillAtAsync(job, 5);
        var onDisk = JobRecord.FromJson(File.ReadAllText(Path.Combine(host.JobsDirectory, killed, JobStore.RecordFile)));
        Assert.Equal(JobStates.Running, onDisk.State);

        await host.RestartAsync();
        var resumed = await host.WaitForStateAsync(killed, JobStates.Succeeded);
        Assert.Equal(1, (int)resumed["interruptions"]!);
        // It went on from the checkpoint written when it stopped (at step 5, or a step later: the stop reaches it asynchronously).
        Assert.InRange((int)resumed["resumed_from"]!["step"]!, 5, 7);
        Assert.Equal(Curve(uninterrupted), Curve(resumed));
        Assert.Equal(File.ReadAllBytes(Path.Combine(host.JobFolder(reference), "body", "model.safetensors")),
            File.ReadAllBytes(Path.Combine(host.JobFolder(killed), "body", "model.safetensors")));
        Assert.False(Directory.Exists(Path.Combine(host.JobFolder(killed), "checkpoint")));
    }

    /// <summary>Step, losses and accuracy of every curve point (not the seconds).</summary>
    private static List<string> Curve(JsonNode job) => job["curve"]!.AsArray()
        .Select(p => $"{(int)p!["step"]!} {(double)p["train_loss"]!:R} {(double?)p["eval_loss"]:R} {(double?)p["masked_accuracy"]:R}").ToList();

    [Fact]
    public async Task Pretrain_submissions_are_checked_field_by_field()
    {
        await using var host = await JobsHost.StartAsync();
        async Task Expect(Dictionary<string, object?> job, int status, string field, string message)
        {
            var (s, body) = await host.PostAsync("/v1/jobs", job);
            Assert.True(status == s, body.ToJsonString());
            Assert.Equal(field, (string?)body["error"]!["field"]);
            Assert.Equal(message, (string)body["error"]!["message"]!);
        }
        await Expect(Job(("corpus", null)), 400, "corpus", "corpus is required (file names relative to a data root, or uploaded data)");
        await Expect(Job(("corpus", 3)), 400, "corpus", "corpus must be a file name relative to a data root, or {\"content\": \"...\", \"name\": \"...\"}, got a number");
        await Expect(Job(("corpus", new[] { Corpus, "nope.txt" })), 422, "corpus[1]", "corpus[1]: no file 'nope.txt' in the data roots");
        await Expect(Job(("config_size", null)), 422, "config_size", "give exactly one of config_size, config and from");
        await Expect(Job(("from", "served")), 422, "from", "give exactly one of config_size, config and from");
        await Expect(Job(("config_size", "huge")), 422, "config_size", "config_size: size 'huge' is not one of tiny, mini, small, medium, base, large");
        await Expect(Job(("config_size", null), ("from", "nowhere")), 422, "from", "from: no folder 'nowhere' in the data roots");
        await Expect(Job(("config_size", null), ("from", "served"), ("vocab", "x")), 422, "vocab", "vocab goes with a fresh model; from uses the folder's own vocabulary");
        await Expect(Job(("config_size", null), ("config", "none.json")), 422, "config", "config: no file 'none.json' in the data roots");
        await Expect(Job(("seq_len", 4)), 422, "seq_len", "seq_len must be between 8 and 1000000, got 4");
        await Expect(Job(("seq_len", 1024)), 422, "seq_len", "seq_len 1024 exceeds the model's max_position_embeddings (512)");
        await Expect(Job(("long_seq_len", 16)), 422, "long_seq_len", "long_seq_len (16) must be longer than seq_len (16)");
        await Expect(Job(("learning_rate", 0)), 422, "learning_rate", "learning_rate must be positive, got 0");
        await Expect(Job(("mask_prob", 1)), 422, "mask_prob", "mask_prob must be between 0 and 1, got 1");
        await Expect(Job(("max_minutes", 0)), 422, "max_minutes", "max_minutes must be positive, got 0");
        await Expect(Job(("max_steps", 0)), 422, "max_steps", "max_steps must be between 1 and 100000000, got 0");
        await Expect(Job(("batch_size", "2")), 400, "batch_size", "batch_size must be an integer, got a string");
        await Expect(Job(("whole_word", "yes")), 400, "whole_word", "whole_word must be true or false, got a string");
        await Expect(Job(("precision", "fp16")), 422, "precision",
            "precision fp16: mixed-precision training needs autocast, which TorchSharp 0.107 does not have; use fp32 (or tf32 on CUDA)");
        await Expect(Job(("precision", "tf32")), 422, "precision", "precision tf32 needs a CUDA device; the body runs on cpu");
        await Expect(Job(("epochs", 3)), 400, "epochs",
            "unknown field 'epochs'; expected kind, corpus, config_size, config, vocab, from, max_steps, max_minutes, batch_size, grad_accum, seq_len, long_seq_len, long_fraction, learning_rate, warmup, weight_decay, mask_prob, whole_word, eval_every, eval_sequences, checkpoint_every, log_every, seed, precision, promote");
        Assert.Empty((await host.GetAsync("/v1/jobs")).Body["jobs"]!.AsArray());
    }
}
