using BertHost.Client;
using BertHost.Tests.Jobs;

namespace BertHost.Tests.Client;

/// <summary>
/// Keys and scopes, and training jobs (JSON with inline data, multipart uploads, list, get, cancel, promote) through
/// <see cref="BertHostClient"/> against a real host with a job runner and an <c>auth:</c> section.
/// </summary>
public sealed class ClientJobsTests
{
    private const string PredictKey = "client-predict-key-0123456789";
    private const string TrainKey = "client-train-key-0123456789";
    private const string AdminKey = "client-admin-key-0123456789";

    private const string Auth = $$"""
        auth:
          keys:
            - { id: app, key: {{PredictKey}}, scopes: [predict] }
            - { id: ci, key: {{TrainKey}}, scopes: [train] }
            - { id: ops, key: {{AdminKey}}, scopes: [admin] }
        """;

    private static readonly string[] Texts = ["happy dog", "war in the city", "the cat sat"];

    private static BertHostClient Client(JobsHost host, string? key, ApiKeyHeader header = ApiKeyHeader.Bearer) =>
        BertHostClient.Create(new BertHostClientOptions { BaseAddress = host.Client.BaseAddress, ApiKey = key, ApiKeyHeader = header });

    [Fact]
    public async Task Missing_wrong_and_underprivileged_keys_are_typed_401_and_403_in_each_routes_shape()
    {
        await using var host = await JobsHost.StartAsync("promote: manual", sections: Auth);
        using var anonymous = Client(host, null);
        using var wrong = Client(host, "not-a-key-of-this-host");
        using var predict = Client(host, PredictKey);
        using var predictByHeader = Client(host, PredictKey, ApiKeyHeader.XApiKey);
        using var train = Client(host, TrainKey);

        var none = await Assert.ThrowsAsync<BertHostException>(() => anonymous.ListHeadsAsync());
        Assert.Equal((401, "unauthorized"), (none.Status, none.ErrorCode));
        Assert.Contains("this route needs an API key", none.Detail);
        var invalid = await Assert.ThrowsAsync<BertHostException>(() => wrong.ClassifyAsync("sentiment", ["a"]));
        Assert.Equal((401, "the API key is not valid"), (invalid.Status, invalid.Detail));

        Assert.Equal(["sentiment", "fixed", "echo"], (await predict.ListHeadsAsync()).Select(h => h.Name));
        Assert.Equal(["sentiment", "fixed", "echo"], (await predictByHeader.ListHeadsAsync()).Select(h => h.Name));
        var noTrain = await Assert.ThrowsAsync<BertHostException>(() => predict.ListJobsAsync());
        Assert.Equal((403, "forbidden", "the key 'app' lacks the train scope this route needs"), (noTrain.Status, noTrain.ErrorCode, noTrain.Detail));
        var noPredict = await Assert.ThrowsAsync<BertHostException>(() => train.GetBodyAsync());
        Assert.Equal((403, "forbidden"), (noPredict.Status, noPredict.ErrorCode));

        // The protocol routes answer the same refusals in their own shapes.
        var openAi = await Assert.ThrowsAsync<BertHostException>(() => anonymous.CreateEmbeddingsAsync(["a"]));
        Assert.Equal((401, ErrorShape.OpenAi, "unauthorized", "authentication_error"), (openAi.Status, openAi.Shape, openAi.ErrorCode, openAi.ErrorType));
        var tei = await Assert.ThrowsAsync<BertHostException>(() => train.TokenizeAsync(["a"]));
        Assert.Equal((403, ErrorShape.Tei), (tei.Status, tei.Shape));
        Assert.Contains("lacks the predict scope", tei.Detail);
        var kserve = await Assert.ThrowsAsync<BertHostException>(() => anonymous.GetServerMetadataAsync());
        Assert.Equal((401, ErrorShape.KServe), (kserve.Status, kserve.Shape));
        Assert.Equal(401, (await Assert.ThrowsAsync<BertHostException>(() => anonymous.GetMetricsAsync())).Status);

        // Health needs no key.
        Assert.Equal("ok", (await anonymous.GetLivenessAsync()).Status);
        Assert.True((await anonymous.GetReadinessAsync()).IsReady);
        Assert.True(await anonymous.IsServerLiveAsync());
        Assert.True(await anonymous.IsServerReadyAsync());
    }

    [Fact]
    public async Task Jobs_are_submitted_inline_and_as_uploads_listed_read_and_promoted_with_the_admin_scope()
    {
        await using var host = await JobsHost.StartAsync("promote: manual", sections: Auth);
        using var train = Client(host, TrainKey);
        using var admin = Client(host, AdminKey);
        using var predict = Client(host, PredictKey);
        var evalName = host.WriteData(16, seed: 4);
        var trainText = File.ReadAllText(host.PathOf(host.WriteData(24, seed: 3)));

        var queued = await train.SubmitJobAsync(new JobRequest
        {
            Head = "sentiment", Train = JobData.Inline(trainText, "train.jsonl"), Eval = JobData.FromDataRoot(evalName),
            Epochs = 2, BatchSize = 8, LearningRate = 0.01, Seed = 5,
        });
        Assert.Contains(queued.State, new[] { "queued", "running" });
        Assert.Equal(("train", "sentiment", "head", "ci"), (queued.Kind, queued.Head, queued.Mode, queued.SubmittedBy));
        Assert.Equal($"/v1/jobs/{queued.Id}", queued.Links["self"]);
        Assert.Equal(0.01, queued.Options!.Value.GetProperty("learning_rate").GetDouble());
        Assert.Equal([("train", "train.jsonl", "upload"), ("eval", evalName, "data_root")], queued.Data.Select(d => (d.Role, d.Name!, d.Source!)));
        Assert.All(queued.Data, d => Assert.Matches("^[0-9a-f]{64}$", d.Sha256));

        var done = await train.WaitForJobAsync(queued.Id, TimeSpan.FromMilliseconds(50));
        Assert.Equal("succeeded", done.State);
        Assert.True(done.IsFinished);
        Assert.Equal([1, 2], done.EpochResults.Select(e => e.Epoch));
        Assert.All(done.EpochResults, e => Assert.True(e.Metrics!.ContainsKey("accuracy")));
        Assert.Equal(6, done.TotalSteps);
        Assert.False(done.Promoted);
        Assert.Equal(done.EpochResults.Select(e => e.Loss), (await train.GetJobAsync(queued.Id)).EpochResults.Select(e => e.Loss));
        Assert.Contains(queued.Id, (await train.ListJobsAsync("succeeded")).Select(j => j.Id));
        Assert.Empty(await train.ListJobsAsync("running"));

        var before = await predict.ClassifyAsync("sentiment", Texts.Select(t => new TextInput(t)));
        var refused = await Assert.ThrowsAsync<BertHostException>(() => train.PromoteJobAsync(queued.Id));
        Assert.Equal((403, "forbidden"), (refused.Status, refused.ErrorCode));
        var promoted = await admin.PromoteJobAsync(queued.Id);
        Assert.True(promoted.Promoted);
        Assert.Equal("ops", promoted.PromotedBy);
        var after = await predict.ClassifyAsync("sentiment", Texts.Select(t => new TextInput(t)));
        Assert.NotEqual(before.Select(r => r.Scores["positive"]), after.Select(r => r.Scores["positive"]));
        var again = await Assert.ThrowsAsync<BertHostException>(() => admin.PromoteJobAsync(queued.Id));
        Assert.Equal((409, "conflict", $"job {queued.Id} is already promoted"), (again.Status, again.ErrorCode, again.Detail));

        // Uploads: a local file and a stream, as multipart parts named after their fields.
        var file = host.PathOf(host.WriteData(16, seed: 7));
        var upload = await train.SubmitJobAsync(new JobRequest { Head = "sentiment", Epochs = 1, BatchSize = 8 },
            [JobUpload.FromFile("train", file), JobUpload.FromStream("eval", "held-out.jsonl", File.OpenRead(host.PathOf(evalName)))]);
        Assert.Equal([("train", Path.GetFileName(file), "upload"), ("eval", "held-out.jsonl", "upload")], upload.Data.Select(d => (d.Role, d.Name!, d.Source!)));
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(file))), upload.Data[0].Sha256);
        Assert.Equal(new FileInfo(file).Length, upload.Data[0].Bytes);
        Assert.Equal("succeeded", (await train.WaitForJobAsync(upload.Id, TimeSpan.FromMilliseconds(50))).State);
        Assert.Equal([upload.Id, queued.Id], (await train.ListJobsAsync()).Select(j => j.Id));
    }

    [Fact]
    public async Task A_running_job_is_cancelled_and_submissions_are_refused_naming_the_field()
    {
        await using var host = await JobsHost.StartAsync();
        using var client = BertHostClient.Create(new BertHostClientOptions { BaseAddress = host.Client.BaseAddress });
        var data = host.WriteData(64, seed: 4);
        var job = await client.SubmitJobAsync(new JobRequest { Head = "sentiment", Train = JobData.FromDataRoot(data), Epochs = 100_000, BatchSize = 4 });
        while (job.State != "running" || job.Step < 2)
        {
            Assert.False(job.IsFinished, job.Error);
            await Task.Delay(20);
            job = await client.GetJobAsync(job.Id);
        }
        var cancelling = await client.CancelJobAsync(job.Id);
        Assert.True(cancelling.CancelRequested);
        var cancelled = await client.WaitForJobAsync(job.Id, TimeSpan.FromMilliseconds(20));
        Assert.Equal(("cancelled", false), (cancelled.State, cancelled.Promoted));
        var twice = await Assert.ThrowsAsync<BertHostException>(() => client.CancelJobAsync(job.Id));
        Assert.Equal((409, $"job {job.Id} has already been cancelled; only queued or running jobs can be cancelled"), (twice.Status, twice.Detail));
        var missing = await Assert.ThrowsAsync<BertHostException>(() => client.GetJobAsync("no-such-job"));
        Assert.Equal((404, "not_found"), (missing.Status, missing.ErrorCode));

        var unknownHead = await Assert.ThrowsAsync<BertHostException>(() => client.SubmitJobAsync(new JobRequest { Head = "nope", Train = JobData.FromDataRoot(data) }));
        Assert.Equal((404, "head"), (unknownHead.Status, unknownHead.Field));
        var typo = await Assert.ThrowsAsync<BertHostException>(() => client.SubmitJobAsync(new JobRequest
        {
            Head = "sentiment", Train = JobData.FromDataRoot(data), AdditionalFields = new Dictionary<string, object?> { ["epochz"] = 2 },
        }));
        Assert.Equal((400, "bad_request", "epochz"), (typo.Status, typo.ErrorCode, typo.Field));
        Assert.Contains("did you mean 'epochs'?", typo.Detail);
        var outside = await Assert.ThrowsAsync<BertHostException>(() => client.SubmitJobAsync(new JobRequest { Head = "sentiment", Train = JobData.FromDataRoot("../outside.jsonl") }));
        Assert.Equal((422, "train"), (outside.Status, outside.Field));
        var noTraining = await Assert.ThrowsAsync<BertHostException>(() => client.SubmitJobAsync(new JobRequest { Head = "echo", Train = JobData.FromDataRoot(data) }));
        Assert.Equal((422, "head"), (noTraining.Status, noTraining.Field));
    }
}
