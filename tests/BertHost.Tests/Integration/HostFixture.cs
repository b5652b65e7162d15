using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Api;
using BertHost.Core.Config;
using BertHost.Core.Serving;
using BertHost.Tests.Plugins;
using BertHost.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging.Abstractions;

namespace BertHost.Tests.Integration;

/// <summary>
/// The real host on a free 127.0.0.1 port: a YAML deployment of tiny-bert with heads from the real plugin assemblies
/// (the text-classification plugin, an imported Hugging Face BertForSequenceClassification folder, and test plugins
/// that fail while loading or while serving).
/// </summary>
public sealed class HostFixture : IAsyncLifetime
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-host-");
    private WebApplication? _app;

    public InferenceEngine Engine { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;
    public string ConfigPath => Path.Combine(_dir.FullName, "deployment.yaml");

    public static string Yaml(string extraHeads = "") => $"""
        host:
          urls: "http://127.0.0.1:0"
          max_inputs_per_request: 32
        body:
          checkpoint: {ReferenceOutputs.ModelFolder("tiny-bert")}
        batching:
          max_batch_tokens: 4096
          max_wait_ms: 10
        heads:
          - name: sentiment
            kind: text-classification
            plugin: {HeadTestSupport.ClassificationPlugin}
            labels: [negative, positive]
            options: {"{"} pooling: cls {"}"}
          - name: topic
            kind: text-classification
            plugin: {HeadTestSupport.ClassificationPlugin}
            labels: [sports, politics, science]
            options: {"{"} pooling: mean {"}"}
          - name: imported
            kind: text-classification
            plugin: {HeadTestSupport.ClassificationPlugin}
            weights: {ReferenceOutputs.ModelFolder("tiny-bert-seqcls")}
          - name: echo
            kind: echo-cls
            plugin: {HeadTestSupport.TestHeadsPlugin}
          - name: broken
            kind: throws-in-create
            plugin: {HeadTestSupport.TestHeadsPlugin}
            required: false
          - name: flaky
            kind: throws-in-forward
            plugin: {HeadTestSupport.TestHeadsPlugin}
        {extraHeads}
        """;

    public async Task InitializeAsync()
    {
        await File.WriteAllTextAsync(ConfigPath, Yaml());
        var config = HostConfigLoader.Load(ConfigPath);
        var metrics = new ServingMetrics();
        Engine = InferenceEngine.Start(config, NullLoggerFactory.Instance, metrics);
        _app = ApiServer.Build(ApiOptions.FromConfig(config), Engine, metrics, NullLoggerProvider.Instance);
        await _app.StartAsync();
        Client = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
    }

    public async Task DisposeAsync()
    {
        Client.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        await Engine.DisposeAsync();
        _dir.Delete(recursive: true);
    }

    public Task<(int Status, JsonNode Body)> PostAsync(string path, object body) => HttpJson.PostAsync(Client, path, body);

    public Task<(int Status, JsonNode Body)> GetAsync(string path) => HttpJson.GetAsync(Client, path);

    public static JsonElement Json(object value) => JsonSerializer.SerializeToElement(value);
}
