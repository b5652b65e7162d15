using BertHost.Core.Jobs;

namespace BertHost.Tests.Jobs;

/// <summary>Multitask train jobs over HTTP: several heads and the body trained jointly, swapped in together.</summary>
public sealed class MultitaskJobTests
{
    private static readonly string[] Texts = ["happy dog", "war in the city", "the cat sat"];

    // "other" serves weights trained on tiny-bert, like "fixed", but is not in the job.
    // (The first line lands at the list's indentation in JobsHost's YAML; the others are written as they are.)
    private static readonly string OtherHead = string.Join("\n",
        "- name: other",
        "    kind: text-classification",
        $"    plugin: {Plugins.HeadTestSupport.ClassificationPlugin}",
        "    weights: fixed-head",
        "    options: { pooling: mean, dropout: 0, hidden_layers: [32] }");

    [Fact]
    public async Task A_multitask_job_trains_body_and_heads_together_swaps_them_in_at_once_and_stales_heads_outside_it()
    {
        await using var host = await JobsHost.StartAsync(extraHeads: OtherHead);
        var first = host.WriteData(16, seed: 21);
        var second = host.WriteData(12, seed: 22);
        var oldBody = host.Engine.Body.Fingerprint;
        var sentiment = await host.PredictAsync("sentiment", Texts);
        var fixedHead = await host.PredictAsync("fixed", Texts);

        var id = await host.SubmitAsync(new
        {
            mode = "multitask",
            tasks = new object[] { new { head = "sentiment", train = first, eval = first }, new { head = "fixed", train = second, eval = second } },
            epochs = 2, batch_size = 4, learning_rate = 0.001, seed = 4,
        });
        var job = await host.WaitForStateAsync(id, JobStates.Succeeded);
        Assert.Equal("multitask", (string)job["mode"]!);
        Assert.Equal(["sentiment", "fixed"], job["heads"]!.AsArray().Select(h => (string)h!));
        Assert.Equal(["sentiment.train", "sentiment.eval", "fixed.train", "fixed.eval"], job["data"]!.AsArray().Select(d => (string)d!["role"]!));
        Assert.Equal("full", (string)job["options"]!["body_mode"]!);
        var epochs = job["epoch_results"]!.AsArray();
        Assert.Equal(2, epochs.Count);
        Assert.All(epochs, e => Assert.Equal(["fixed", "sentiment"], e!["tasks"]!.AsObject().Select(t => t.Key).Order()));
        Assert.NotNull(job["best_metrics"]!["mean_primary"]);
        var folder = host.JobFolder(id);
        foreach (var file in new[] { "body/model.safetensors", "heads/sentiment/head.safetensors", "heads/fixed/head.safetensors", "history.json" })
            Assert.True(File.Exists(Path.Combine(folder, file)), file);

        // body_swap auto: the new body and both heads serve, each head from the job's folder.
        Assert.True((bool)job["promoted"]!);
        var newBody = (string)job["output_fingerprint"]!;
        Assert.NotEqual(oldBody, newBody);
        Assert.Equal(newBody, host.Engine.Body.Fingerprint);
        var sentimentAfter = await host.PredictAsync("sentiment", Texts);
        var fixedAfter = await host.PredictAsync("fixed", Texts);
        Assert.NotEqual(sentiment, sentimentAfter);
        Assert.NotEqual(fixedHead, fixedAfter);
        foreach (var head in new[] { "sentiment", "fixed" })
        {
            var (_, status) = await host.GetAsync($"/v1/heads/{head}");
            Assert.Equal("ready", (string)status["state"]!);
            Assert.Equal($"jobs/{id}/heads/{head}", (string)status["details"]!["weights"]!);
        }
        // "other" was trained on the old body and is not in the job: stale.
        var (_, other) = await host.GetAsync("/v1/heads/other");
        Assert.Equal("stale", (string)other["state"]!);
        Assert.Equal($"head other was trained on body {oldBody}, the served body is {newBody}; re-train it", (string)other["error"]!);

        // A new host loads the job's outputs (promoted.json) and answers exactly the same.
        await host.RestartAsync();
        Assert.Equal(newBody, host.Engine.Body.Fingerprint);
        Assert.Equal(sentimentAfter, await host.PredictAsync("sentiment", Texts));
        Assert.Equal(fixedAfter, await host.PredictAsync("fixed", Texts));
        Assert.Equal("stale", (string)(await host.GetAsync("/v1/heads/other")).Body["state"]!);
    }

    [Fact]
    public async Task Multitask_submissions_are_checked_task_by_task()
    {
        await using var host = await JobsHost.StartAsync();
        var data = host.WriteData(4, seed: 23);
        async Task Expect(object job, int status, string field, string message)
        {
            var (s, body) = await host.PostAsync("/v1/jobs", job);
            Assert.True(status == s, body.ToJsonString());
            Assert.Equal(field, (string?)body["error"]!["field"]);
            Assert.Equal(message, (string)body["error"]!["message"]!);
        }
        await Expect(new { mode = "multitask" }, 400, "tasks", "tasks is required for a multitask job");
        await Expect(new { mode = "multitask", tasks = new[] { new { head = "sentiment", train = data } } }, 422, "tasks", "tasks: a multitask job needs at least two tasks, got 1");
        await Expect(new { mode = "multitask", tasks = new[] { new { head = "sentiment", train = data }, new { head = "Sentiment", train = data } } }, 422, "tasks[1].head",
            "tasks[1].head: head 'sentiment' is given more than once");
        await Expect(new { mode = "multitask", tasks = new[] { new { head = "sentiment", train = data }, new { head = "nobody", train = data } } }, 404, "tasks[1].head",
            "no head named 'nobody' (heads: sentiment, fixed, echo)");
        await Expect(new { mode = "multitask", tasks = new[] { new { head = "sentiment", train = data }, new { head = "echo", train = data } } }, 422, "tasks[1].head",
            "head 'echo' (echo-cls) does not support training");
        await Expect(new { mode = "multitask", tasks = new[] { new { head = "sentiment", train = "nope.jsonl" }, new { head = "fixed", train = data } } }, 422, "tasks[0].train",
            "tasks[0].train: no file 'nope.jsonl' in the data roots");
        await Expect(new { mode = "multitask", tasks = new object[] { new { head = "sentiment", train = data }, new { head = "fixed" } } }, 400, "tasks[1].train", "tasks[1].train is required (a file name relative to a data root, or uploaded data)");
        await Expect(new { mode = "multitask", tasks = new object[] { new { head = "sentiment", train = data }, new { head = "fixed", train = data, evl = data } } }, 400, "tasks[1].evl",
            "unknown field 'tasks[1].evl' (did you mean 'eval'?); expected head, train, eval");
        await Expect(new { mode = "multitask", tasks = new object[] { new { head = "sentiment", train = data }, 3 } }, 400, "tasks[1]", "tasks[1] must be a JSON object, got a number");
        await Expect(new { mode = "multitask", head = "sentiment", tasks = new[] { new { head = "sentiment", train = data }, new { head = "fixed", train = data } } }, 400, "head",
            "a multitask job names its heads and data in tasks, not in head");
        await Expect(new { mode = "multitask", precision = "fp16", tasks = new[] { new { head = "sentiment", train = data }, new { head = "fixed", train = data } } }, 422, "precision",
            "precision fp16 needs loss scaling (a gradient scaler), which TorchSharp 0.107 does not provide; use bf16");
        await Expect(new { head = "sentiment", train = data, tasks = new[] { new { head = "fixed", train = data } } }, 400, "tasks", "tasks go with \"mode\": \"multitask\"");
        Assert.Empty((await host.GetAsync("/v1/jobs")).Body["jobs"]!.AsArray());
    }
}
