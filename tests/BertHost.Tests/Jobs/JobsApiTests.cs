using System.Text.Json.Nodes;
using BertHost.Core.Jobs;
using BertHost.Tests.Api;

namespace BertHost.Tests.Jobs;

/// <summary>Training jobs over HTTP on tiny-bert: submit, progress, swap-in, serving meanwhile, cancel, failure, restart.</summary>
public sealed class JobsApiTests
{
    private static readonly string[] Texts = ["happy dog", "war in the city", "the cat sat", "never the best"];

    [Fact]
    public async Task A_head_job_answers_202_trains_reports_progress_and_its_head_then_serves_also_after_a_restart()
    {
        await using var host = await JobsHost.StartAsync();
        var data = host.WriteData(32, seed: 3);
        var before = await host.PredictAsync("sentiment", Texts);

        var (status, queued) = await host.PostAsync("/v1/jobs", new
        {
            head = "sentiment", train = data, eval = $"./{data}", epochs = 4, batch_size = 8, learning_rate = 0.01, seed = 5,
        });
        Assert.Equal(202, status);
        var id = (string)queued["id"]!;
        Assert.Contains((string)queued["state"]!, new[] { JobStates.Queued, JobStates.Running });
        Assert.Equal($"/v1/jobs/{id}", (string)queued["links"]!["self"]!);
        Assert.Equal($"/v1/jobs/{id}/promote", (string)queued["links"]!["promote"]!);
        Assert.Equal("sentiment", (string)queued["head"]!);
        Assert.Equal("head", (string)queued["mode"]!);
        Assert.Equal(0.01, (double)queued["options"]!["learning_rate"]!);
        Assert.Equal(8, (int)queued["options"]!["batch_size"]!);
        var files = queued["data"]!.AsArray();
        Assert.Equal(["train", "eval"], files.Select(f => (string)f!["role"]!));
        // Data files are shown by the name the client gave, never by their server path.
        Assert.Equal([data, $"./{data}"], files.Select(f => (string)f!["name"]!));
        Assert.All(files, f => Assert.Equal(("data_root", null), ((string)f!["source"]!, f["path"])));
        Assert.Null(queued["folder"]);
        Assert.All(files, f => Assert.Matches("^[0-9a-f]{64}$", (string)f!["sha256"]!));

        var job = await host.WaitForStateAsync(id, JobStates.Succeeded);
        Assert.Equal(4, (int)job["epoch"]!);
        Assert.Equal(4, (int)job["epochs"]!);
        Assert.Equal(16, (int)job["total_steps"]!);
        Assert.Equal(16, (int)job["step"]!);
        Assert.True((double)job["examples_per_second"]! > 0);
        Assert.Equal([1, 2, 3, 4], job["epoch_results"]!.AsArray().Select(e => (int)e!["epoch"]!));
        Assert.All(job["epoch_results"]!.AsArray(), e => Assert.NotNull(e!["metrics"]!["accuracy"]));
        Assert.NotNull(job["best_epoch"]);
        Assert.Equal(host.Engine.Body.Fingerprint, (string)job["body_fingerprint"]!);
        Assert.True((bool)job["promoted"]!);
        Assert.NotNull(job["started"]);
        Assert.NotNull(job["finished"]);
        Assert.Null(job["folder"]);
        var folder = host.JobFolder(id);
        foreach (var file in new[] { "job.json", "history.json", "history.csv", "history.svg", "head/head.json", "head/head.safetensors" })
            Assert.True(File.Exists(Path.Combine(folder, file)), file);

        // The served head now has the trained weights, and says where they come from.
        var after = await host.PredictAsync("sentiment", Texts);
        Assert.NotEqual(before, after);
        var (_, head) = await host.GetAsync("/v1/heads/sentiment");
        Assert.Equal($"jobs/{id}/head", (string)head["details"]!["weights"]!);
        Assert.Equal(id, (string)head["details"]!["promoted_from_job"]!);

        // A restart loads the promoted weights from the job's folder and lists the job's history.
        await host.RestartAsync();
        Assert.Equal(after, await host.PredictAsync("sentiment", Texts));
        var (_, list) = await host.GetAsync("/v1/jobs?state=succeeded");
        var listed = Assert.Single(list["jobs"]!.AsArray())!;
        Assert.Equal(id, (string)listed["id"]!);
        Assert.Equal(job["epoch_results"]!.ToJsonString(), listed["epoch_results"]!.ToJsonString());
        Assert.Empty((await host.GetAsync("/v1/jobs?state=running")).Body["jobs"]!.AsArray());
        Assert.Contains("berthost_jobs{state=\"succeeded\"} 1", await host.Client.GetStringAsync("/metrics"));
    }

    [Fact]
    public async Task Serving_answers_while_a_job_runs_and_cancelling_it_leaves_the_served_heads_bit_identical()
    {
        await using var host = await JobsHost.StartAsync();
        var data = host.WriteData(64, seed: 4);
        var sentiment = await host.PredictAsync("sentiment", Texts);
        var fixedHead = await host.PredictAsync("fixed", Texts);

        var id = await host.SubmitAsync(new { head = "sentiment", train = data, epochs = 100_000, batch_size = 4, learning_rate = 0.01 });
        await host.WaitAsync(id, j => (string)j["state"]! == JobStates.Running && (int?)j["step"] > 20);

        // Requests of every head keep being answered while the job trains on the same body.
        var requests = Enumerable.Range(0, 24).Select(i => host.PostAsync($"/v1/heads/{(i % 2 == 0 ? "sentiment" : "fixed")}/predict",
            new { inputs = new[] { Texts[i % Texts.Length], "the house by the river" } })).ToList();
        foreach (var (status, body) in await Task.WhenAll(requests)) Assert.True(status == 200, body.ToJsonString());
        Assert.Equal(JobStates.Running, (string)(await host.GetAsync($"/v1/jobs/{id}")).Body["state"]!);
        // Head mode trains a new head instance on the served body without putting that body in training mode.
        Assert.False(host.Engine.Body.Model.training);

        var (cancelStatus, cancelling) = await host.DeleteAsync($"/v1/jobs/{id}");
        Assert.Equal(202, cancelStatus);
        Assert.True((bool)cancelling["cancel_requested"]!);
        var job = await host.WaitForStateAsync(id, JobStates.Cancelled);
        Assert.False((bool)job["promoted"]!);
        Assert.False(Directory.Exists(Path.Combine(host.JobFolder(id), "head")));
        Assert.False(Directory.Exists(Path.Combine(host.JobFolder(id), "checkpoint")));

        Assert.Equal(sentiment, await host.PredictAsync("sentiment", Texts));
        Assert.Equal(fixedHead, await host.PredictAsync("fixed", Texts));
        var (again, conflict) = await host.DeleteAsync($"/v1/jobs/{id}");
        Assert.Equal(409, again);
        Assert.Equal($"job {id} has already been cancelled; only queued or running jobs can be cancelled", (string)conflict["error"]!["message"]!);
    }

    [Fact]
    public async Task A_job_failing_on_malformed_data_records_the_file_and_line_and_leaves_the_head_untouched()
    {
        await using var host = await JobsHost.StartAsync();
        var data = host.WriteData(8, seed: 6);
        File.AppendAllText(host.PathOf(data), "{\"text\": \"broken\", \"label\": \n");
        var before = await host.PredictAsync("sentiment", Texts);

        var id = await host.SubmitAsync(new { head = "sentiment", train = data, epochs = 2 });
        var job = await host.WaitForStateAsync(id, JobStates.Failed);
        // A data-root file's line is named, its content is not quoted (the reason goes to the log).
        Assert.Equal($"{data}:9: malformed record (the reason is in the host's log; it may quote the file)", (string)job["error"]!);
        Assert.False((bool)job["promoted"]!);
        // Same head, same answers; scores to 1e-6, as a CPU GEMM may sum in another order from one pass to the next
        // (seen once in six full runs: a difference of 5e-10).
        AssertSameScores(before, await host.PredictAsync("sentiment", Texts));
        Assert.Equal("ready", (string)(await host.GetAsync("/v1/heads/sentiment")).Body["state"]!);
    }

    [Fact]
    public async Task A_full_job_with_manual_body_swap_changes_nothing_until_promoted_then_heads_of_the_old_body_are_stale()
    {
        await using var host = await JobsHost.StartAsync("body_swap: manual");
        var data = host.WriteData(8, seed: 7);
        var oldBody = host.Engine.Body.Fingerprint;
        var before = await host.PredictAsync("sentiment", Texts);

        var id = await host.SubmitAsync(new { head = "sentiment", train = data, mode = "full", epochs = 1, batch_size = 4, learning_rate = 0.001 });
        var job = await host.WaitForStateAsync(id, JobStates.Succeeded);
        Assert.False((bool)job["promoted"]!);
        var newBody = (string)job["output_fingerprint"]!;
        Assert.NotEqual(oldBody, newBody);
        Assert.True(File.Exists(Path.Combine(host.JobFolder(id), "body", "model.safetensors")));
        // The private copy trained; the served body and heads did not change.
        Assert.Equal(oldBody, host.Engine.Body.Fingerprint);
        Assert.Equal(before, await host.PredictAsync("sentiment", Texts));

        var (status, promoted) = await host.PostAsync($"/v1/jobs/{id}/promote", new { });
        Assert.True(status == 200, promoted.ToJsonString());
        Assert.True((bool)promoted["promoted"]!);
        Assert.Equal(newBody, (string)(await host.GetAsync("/v1/body")).Body["fingerprint"]!);
        Assert.NotEqual(before, await host.PredictAsync("sentiment", Texts));

        // "fixed" was trained on the old body: stale and refused with 409 until re-trained; "echo" has no fingerprint and serves.
        var message = $"head fixed was trained on body {oldBody}, the served body is {newBody}; re-train it";
        var (_, heads) = await host.GetAsync("/v1/heads");
        var fixedHead = heads["heads"]!.AsArray().Single(h => (string)h!["name"]! == "fixed")!;
        Assert.Equal("stale", (string)fixedHead["state"]!);
        Assert.Equal(message, (string)fixedHead["error"]!);
        using (var response = await host.Client.PostAsync("/v1/heads/fixed/predict", new StringContent("""{"inputs": ["x"]}""", System.Text.Encoding.UTF8, "application/json")))
            Assert.Equal(message, await ApiTestServer.AssertErrorAsync(response, System.Net.HttpStatusCode.Conflict, "stale_head"));
        var (manyStatus, many) = await host.PostAsync("/v1/predict", new { heads = new[] { "sentiment", "fixed" }, inputs = new[] { "x" } });
        Assert.Equal(409, manyStatus);
        Assert.Equal("heads[1]", (string)many["error"]!["field"]!);
        Assert.Equal(200, (await host.PostAsync("/v1/heads/echo/predict", new { inputs = new[] { "x" } })).Status);

        var (twice, _) = await host.PostAsync($"/v1/jobs/{id}/promote", new { });
        Assert.Equal(409, twice);

        // Re-training "fixed" on the new body makes it serve again; a restart keeps the promoted body and heads.
        var retrain = await host.SubmitAsync(new { head = "fixed", train = data, epochs = 1 });
        await host.WaitForStateAsync(retrain, JobStates.Succeeded);
        var fixedAfter = await host.PredictAsync("fixed", Texts);
        await host.RestartAsync();
        Assert.Equal(newBody, host.Engine.Body.Fingerprint);
        Assert.Equal(fixedAfter, await host.PredictAsync("fixed", Texts));
    }

    [Fact]
    public async Task Submissions_are_checked_field_by_field()
    {
        await using var host = await JobsHost.StartAsync();
        var data = host.WriteData(4, seed: 8);
        async Task Expect(object job, int status, string code, string? field, string message)
        {
            var (s, body) = await host.PostAsync("/v1/jobs", job);
            Assert.True(status == s, body.ToJsonString());
            Assert.Equal(code, (string)body["error"]!["code"]!);
            Assert.Equal(field, (string?)body["error"]!["field"]);
            Assert.Equal(message, (string)body["error"]!["message"]!);
        }
        await Expect(new { head = "nobody", train = data }, 404, "unknown_head", "head", "no head named 'nobody' (heads: sentiment, fixed, echo)");
        await Expect(new { head = "echo", train = data }, 422, "invalid_input", "head", "head 'echo' (echo-cls) does not support training");
        await Expect(new { head = "sentiment" }, 400, "bad_request", "train", "train is required (a file name relative to a data root, or uploaded data)");
        await Expect(new { head = "sentiment", train = "nope.jsonl" }, 422, "invalid_input", "train", "train: no file 'nope.jsonl' in the data roots");
        await Expect(new { head = "sentiment", train = data, eval = "nope.jsonl" }, 422, "invalid_input", "eval", "eval: no file 'nope.jsonl' in the data roots");
        await Expect(new { head = "sentiment", train = data, epochs = "3" }, 400, "bad_request", "epochs", "epochs must be an integer, got a string");
        await Expect(new { head = "sentiment", train = data, epochs = 0 }, 422, "invalid_input", "epochs", "epochs must be between 1 and 100000, got 0");
        await Expect(new { head = "sentiment", train = data, batch_size = 2.5 }, 400, "bad_request", "batch_size", "batch_size must be an integer, got 2.5");
        await Expect(new { head = "sentiment", train = data, learning_rate = -1 }, 422, "invalid_input", "learning_rate", "learning_rate must be between 0 and 10, got -1");
        await Expect(new { head = "sentiment", train = data, warmup_ratio = 2 }, 422, "invalid_input", "warmup_ratio", "warmup_ratio must be between 0 and 1, got 2");
        await Expect(new { head = "sentiment", train = data, mode = "most" }, 422, "invalid_input", "mode", "mode 'most' is not one of head, partial, full, lora (or multitask)");
        await Expect(new { head = "sentiment", train = data, mode = "partial", partial_layers = 9 }, 422, "invalid_input", "partial_layers",
            $"partial_layers must be between 1 and {host.Engine.Body.Config.NumHiddenLayers}, got 9");
        await Expect(new { head = "sentiment", train = data, precision = "fp8" }, 422, "invalid_input", "precision", "precision 'fp8' is not one of fp32, bf16, fp16, auto");
        // What the trainer refuses is refused at submission, not when the job runs.
        await Expect(new { head = "sentiment", train = data, precision = "fp16" }, 422, "invalid_input", "precision",
            "precision fp16 needs loss scaling (a gradient scaler), which TorchSharp 0.107 does not provide; use bf16");
        await Expect(new { head = "sentiment", train = data, promote = "yes" }, 400, "bad_request", "promote", "promote must be true or false, got a string");
        await Expect(new { head = "sentiment", train = data, epoch = 3 }, 400, "bad_request", "epoch",
            "unknown field 'epoch' (did you mean 'epochs'?); expected kind, head, train, eval, mode, epochs, batch_size, learning_rate, weight_decay, warmup_ratio, max_grad_norm, gradient_accumulation_steps, seed, partial_layers, patience, eval_every_epoch, checkpoint_every, precision, format, skip_malformed, promote, tasks, lora_rank, lora_alpha, lora_dropout, lora_targets");
        await Expect(new { kind = "bake", head = "sentiment" }, 422, "invalid_input", "kind", "unknown job kind 'bake' (kinds: pretrain, train)");

        var (listStatus, list) = await host.GetAsync("/v1/jobs?state=done");
        Assert.Equal(400, listStatus);
        Assert.Equal("state", (string)list["error"]!["field"]!);
        Assert.Empty((await host.GetAsync("/v1/jobs")).Body["jobs"]!.AsArray());
        Assert.Equal(404, (await host.GetAsync("/v1/jobs/nope")).Status);
        Assert.Equal(404, (await host.DeleteAsync("/v1/jobs/nope")).Status);
        Assert.Equal(404, (await host.PostAsync("/v1/jobs/nope/promote", new { })).Status);
    }

    [Fact]
    public async Task Jobs_found_running_after_a_kill_are_marked_interrupted_and_stay_so_without_resume()
    {
        await using var host = await JobsHost.StartAsync("resume_interrupted: false");
        var data = host.WriteData(16, seed: 9);
        var id = await host.SubmitAsync(new { head = "sentiment", train = data, epochs = 100_000, batch_size = 4 });
        await host.WaitAsync(id, j => (int?)j["epoch_results"]?.AsArray().Count >= 1);
        await host.RestartAsync(kill: true);

        var job = (await host.GetAsync($"/v1/jobs/{id}")).Body;
        Assert.Equal(JobStates.Interrupted, (string)job["state"]!);
        Assert.Equal(1, (int)job["interruptions"]!);
        Assert.Null(job["finished"]);
        Assert.True(File.Exists(Path.Combine(host.JobFolder(id), "checkpoint", Core.Training.TrainingCheckpoint.StateFile)));
        // An interrupted job can still be cancelled for good.
        var (status, cancelled) = await host.DeleteAsync($"/v1/jobs/{id}");
        Assert.Equal(200, status);
        Assert.Equal(JobStates.Cancelled, (string)cancelled["state"]!);
    }

    private static void AssertSameScores(string expected, string actual)
    {
        var a = JsonNode.Parse(expected)!.AsArray();
        var b = JsonNode.Parse(actual)!.AsArray();
        Assert.Equal(a.Count, b.Count);
        for (var i = 0; i < a.Count; i++)
        {
            Assert.Equal((string)a[i]!["label"]!, (string)b[i]!["label"]!);
            foreach (var (label, score) in a[i]!["scores"]!.AsObject())
                Assert.Equal((double)score!, (double)b[i]!["scores"]![label]!, 1e-6);
        }
    }
}
