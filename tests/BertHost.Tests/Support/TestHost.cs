using System.Text.Json.Nodes;
using BertHost.Api;
using BertHost.Core.Config;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging.Abstractions;

namespace BertHost.Tests.Support;

/// <summary>The real host on a free 127.0.0.1 port from a YAML deployment written to a temporary folder, with a client.</summary>
public sealed class TestHost : IAsyncDisposable
{
    private readonly DirectoryInfo _dir;
    private readonly WebApplication _app;

    private TestHost(DirectoryInfo dir, InferenceEngine engine, WebApplication app)
    {
        _dir = dir;
        _app = app;
        Engine = engine;
        BaseAddress = new Uri(app.Urls.First());
        Client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public InferenceEngine Engine { get; }
    public HttpClient Client { get; }
    public Uri BaseAddress { get; }

    /// <summary>The four built-in heads, each imported from the Hugging Face task folder fine-tuned on tiny-bert (YAML list items).</summary>
    public static string ImportedHeads(string classification = "sentiment") => $"""
          - name: {classification}
            kind: text-classification
            plugin: {Plugin("BertHost.Heads.Classification")}
            weights: {ReferenceOutputs.ModelFolder("tiny-bert-seqcls")}
          - name: ner
            kind: token-classification
            plugin: {Plugin("BertHost.Heads.TokenClassification")}
            weights: {ReferenceOutputs.ModelFolder("tiny-bert-tokcls")}
          - name: qa
            kind: question-answering
            plugin: {Plugin("BertHost.Heads.QuestionAnswering")}
            weights: {ReferenceOutputs.ModelFolder("tiny-bert-qa")}
          - name: choice
            kind: multiple-choice
            plugin: {Plugin("BertHost.Heads.MultipleChoice")}
            weights: {ReferenceOutputs.ModelFolder("tiny-bert-mc")}
        """;

    public static string Plugin(string name) => Path.Combine(TestPaths.RepoRoot, "plugins", name);

    public static async Task<TestHost> StartAsync(string yaml)
    {
        var dir = Directory.CreateTempSubdirectory("berthost-host-");
        var path = Path.Combine(dir.FullName, "deployment.yaml");
        await File.WriteAllTextAsync(path, yaml);
        var config = HostConfigLoader.Load(path);
        var metrics = new ServingMetrics();
        var engine = InferenceEngine.Start(config, NullLoggerFactory.Instance, metrics);
        var app = ApiServer.Build(ApiOptions.FromConfig(config), engine, metrics, NullLoggerProvider.Instance);
        await app.StartAsync();
        return new TestHost(dir, engine, app);
    }

    /// <summary>The host of a shipped deployment file (config/*.yaml) as it is, on a free loopback port instead of its own.</summary>
    public static async Task<TestHost> StartFromFileAsync(string path)
    {
        var config = HostConfigLoader.Load(path);
        config = config with { Host = config.Host with { Urls = "http://127.0.0.1:0" } };
        var dir = Directory.CreateTempSubdirectory("berthost-host-");
        var metrics = new ServingMetrics();
        var engine = InferenceEngine.Start(config, NullLoggerFactory.Instance, metrics);
        var app = ApiServer.Build(ApiOptions.FromConfig(config), engine, metrics, NullLoggerProvider.Instance);
        await app.StartAsync();
        return new TestHost(dir, engine, app);
    }

    public Task<(int Status, JsonNode Body)> PostAsync(string path, object body) => HttpJson.PostAsync(Client, path, body);

    public Task<(int Status, JsonNode Body)> GetAsync(string path) => HttpJson.GetAsync(Client, path);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        await Engine.DisposeAsync();
        _dir.Delete(recursive: true);
    }
}
