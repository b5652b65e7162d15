using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Api;
using BertHost.Core.Config;
using BertHost.Core.Jobs;
using BertHost.Core.Serving;
using BertHost.Tests.Plugins;
using BertHost.Tests.Support;
using BertHost.Tests.Training;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace BertHost.Tests.Jobs;

/// <summary>
/// The real host with a job runner on a free port, over a tiny-bert deployment in a temp folder: <c>sentiment</c>
/// (trainable, fresh), <c>fixed</c> (trainable, weights saved on tiny-bert, so a new body makes it stale) and
/// <c>echo</c> (no training support). <see cref="RestartAsync"/> builds a new host on the same folder.
/// Jobs are enabled with the temp folder as their data root (names in submissions are relative to it) and, unless
/// <c>jobsOptions</c> says otherwise, outputs serve as soon as a job succeeds (<c>promote: auto, body_swap: auto</c>:
/// the deployment opts in; the host's defaults are manual).
/// </summary>
internal sealed class JobsHost : IAsyncDisposable
{
    private WebApplication? _app;

    private JobsHost(string folder) => Folder = folder;

    public string Folder { get; }
    public string ConfigPath => Path.Combine(Folder, "deployment.yaml");
    public string JobsDirectory => Path.Combine(Folder, "jobs");
    public InferenceEngine Engine { get; private set; } = null!;
    public JobRunner Jobs { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    /// <param name="jobsOptions">Keys of the YAML's jobs mapping that replace the defaults, e.g. <c>body_swap: manual</c>.</param>
    /// <param name="extraHeads">More entries of the YAML's heads list (they may use <c>weights: fixed-head</c>).</param>
    /// <param name="sections">More top-level YAML (e.g. an auth section).</param>
    public static async Task<JobsHost> StartAsync(string jobsOptions = "", string extraHeads = "", string sections = "")
    {
        var folder = Directory.CreateTempSubdirectory("berthost-jobs-").FullName;
        File.Copy(TestPaths.Fixture("corpus", "small.txt"), Path.Combine(folder, CorpusName));
        var jobs = new Dictionary<string, string> { ["enabled"] = "true", ["data_roots"] = "[.]", ["promote"] = "auto", ["body_swap"] = "auto" };
        foreach (var pair in jobsOptions.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            jobs[pair[..pair.IndexOf(':')].Trim()] = pair[(pair.IndexOf(':') + 1)..].Trim();
        var jobsSection = "jobs: { " + string.Join(", ", jobs.Select(kv => $"{kv.Key}: {kv.Value}")) + " }";
        var fixedWeights = Path.Combine(folder, "fixed-head");
        using (var body = TrainingData.LoadBody())
        using (var head = TrainingData.Head(body))
            head.Save(fixedWeights, new HeadSaveInfo(body.Fingerprint));
        File.WriteAllText(Path.Combine(folder, "deployment.yaml"), $"""
            host:
              urls: "http://127.0.0.1:0"
            body:
              checkpoint: {ReferenceOutputs.ModelFolder("tiny-bert")}
              device: cpu
            batching:
              max_wait_ms: 1
            {jobsSection}
            {sections}
            heads:
              - name: sentiment
                kind: text-classification
                plugin: {HeadTestSupport.ClassificationPlugin}
                labels: [negative, positive]
                options: {"{"} pooling: mean, dropout: 0, hidden_layers: [32] {"}"}
              - name: fixed
                kind: text-classification
                plugin: {HeadTestSupport.ClassificationPlugin}
                weights: fixed-head
                options: {"{"} pooling: mean, dropout: 0, hidden_layers: [32] {"}"}
              - name: echo
                kind: echo-cls
                plugin: {HeadTestSupport.TestHeadsPlugin}
              {extraHeads}
            """);
        var host = new JobsHost(folder);
        await host.OpenAsync();
        return host;
    }

    private async Task OpenAsync()
    {
        var config = HostConfigLoader.Load(ConfigPath);
        var metrics = new ServingMetrics();
        var loggers = LoggerFactory.Create(b => b.AddProvider(Logs).SetMinimumLevel(LogLevel.Debug));
        Engine = InferenceEngine.Start(config, loggers, metrics);
        Jobs = JobRunner.Start(Engine, loggers, metrics);
        _app = ApiServer.Build(ApiOptions.FromConfig(config), Engine, metrics, Logs, Jobs);
        await _app.StartAsync();
        Client = new HttpClient { BaseAddress = new Uri(_app.Urls.First()), Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>Stops this host (gracefully, or as if killed: nothing more reaches the job records) and starts a new one on the same folder.</summary>
    public async Task RestartAsync(bool kill = false)
    {
        if (kill) await Jobs.AbandonAsync();
        await CloseAsync();
        await OpenAsync();
    }

    private async Task CloseAsync()
    {
        Client.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        await Jobs.DisposeAsync();
        await Engine.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await CloseAsync();
        Directory.Delete(Folder, recursive: true);
    }

    /// <summary>The corpus fixture, copied into the data root.</summary>
    public const string CorpusName = "small.txt";

    /// <summary>Logs of the host (API and jobs, audit lines included).</summary>
    public Api.ListLoggerProvider Logs { get; } = new();

    /// <summary>Writes a JSONL training file into the data root; returns its name there (what a submission gives).</summary>
    public string WriteData(int count, int seed) => Path.GetFileName(TrainingData.WriteJsonl(count, seed, Folder));

    /// <summary>Where a file of the data root is.</summary>
    public string PathOf(string name) => Path.Combine(Folder, name);

    /// <summary>A job's folder (responses do not show it).</summary>
    public string JobFolder(string id) => Path.Combine(JobsDirectory, id);

    public Task<(int Status, JsonNode Body)> PostAsync(string path, object body) => HttpJson.PostAsync(Client, path, body);

    public Task<(int Status, JsonNode Body)> GetAsync(string path) => HttpJson.GetAsync(Client, path);

    public Task<(int Status, JsonNode Body)> DeleteAsync(string path) => HttpJson.DeleteAsync(Client, path);

    /// <summary>Submits a job; asserts 202 and returns its id.</summary>
    public async Task<string> SubmitAsync(object job)
    {
        var (status, body) = await PostAsync("/v1/jobs", job);
        Assert.True(status == 202, body.ToJsonString());
        return (string)body["id"]!;
    }

    /// <summary>
    /// Submits a job and stops this host as if killed (nothing more reaches the records) when the job reports
    /// <paramref name="point"/> (an epoch; a pretrain job: a loss-curve step); returns the job's id.
    /// </summary>
    public async Task<string> SubmitAndKillAtAsync(object job, int point)
    {
        using var reached = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        string? killed = null;
        Jobs.EpochEnded = (id, at) =>
        {
            if (id != killed || at != point) return;
            reached.Set();
            release.Wait(TimeSpan.FromSeconds(60));
        };
        killed = await SubmitAsync(job);
        Assert.True(await Task.Run(() => reached.Wait(TimeSpan.FromSeconds(60))), $"job {killed} never reached {point}");
        var kill = Jobs.AbandonAsync();
        release.Set();
        await kill;
        return killed;
    }

    /// <summary>Polls the job until <paramref name="until"/> holds for its record; returns it.</summary>
    public async Task<JsonNode> WaitAsync(string id, Func<JsonNode, bool> until, int timeoutSeconds = 120)
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (true)
        {
            var (status, job) = await GetAsync($"/v1/jobs/{id}");
            Assert.Equal(200, status);
            if (until(job)) return job;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"job {id}: {job.ToJsonString()}");
            await Task.Delay(50);
        }
    }

    public Task<JsonNode> WaitForStateAsync(string id, string state) =>
        WaitAsync(id, j => (string)j["state"]! == state || JobStates.IsFinished((string)j["state"]!) && (string)j["state"]! != state
            ? (string)j["state"]! == state ? true : throw new Xunit.Sdk.XunitException($"job {id} ended {(string)j["state"]!}, not {state}: {j.ToJsonString()}")
            : false);

    /// <summary>The head's outputs for <paramref name="texts"/> as JSON text (compared for bit-identity: scores are printed round-trip).</summary>
    public async Task<string> PredictAsync(string head, params string[] texts)
    {
        var (status, body) = await PostAsync($"/v1/heads/{head}/predict", new { inputs = texts });
        Assert.True(status == 200, body.ToJsonString());
        return body["outputs"]!.ToJsonString();
    }
}
