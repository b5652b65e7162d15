using BertHost.Api;
using BertHost.Core.Config;
using BertHost.Core.Serving;
using BertHost.Tests.Plugins;
using BertHost.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging.Abstractions;

namespace BertHost.Tests.Protocols;

/// <summary>
/// The real host on a free 127.0.0.1 port with a head of every kind on tiny-bert, imported from the Hugging Face task
/// folders the head tests check against the reference: what the protocol routes (OpenAI, TEI, KServe) are tested on.
/// </summary>
public sealed class ProtocolHost : IAsyncLifetime
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-protocols-");
    private WebApplication? _app;

    public InferenceEngine Engine { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;
    public Uri BaseAddress { get; private set; } = null!;

    private static string Plugin(string name) => Path.Combine(TestPaths.RepoRoot, "plugins", name);

    public static string Yaml(string body = "tiny-bert", string extra = "") => $"""
        host:
          urls: "http://127.0.0.1:0"
          max_inputs_per_request: 16
          max_input_tokens: 200
          max_request_tokens: 400
        body:
          checkpoint: {(Path.IsPathRooted(body) ? body : ReferenceOutputs.ModelFolder(body))}
        protocols:
          rerank_head: cross
        heads:
          - name: emb
            kind: embedding
            plugin: {Plugin("BertHost.Heads.Embedding")}
          - name: emb8
            kind: embedding
            plugin: {Plugin("BertHost.Heads.Embedding")}
            options: {"{"} dimensions: 8, pooling: cls {"}"}
          - name: sentiment
            kind: text-classification
            plugin: {Plugin("BertHost.Heads.Classification")}
            labels: [negative, positive]
            options: {"{"} pooling: cls {"}"}
          - name: cross
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
          - name: broken
            kind: throws-in-create
            plugin: {HeadTestSupport.TestHeadsPlugin}
            required: false
        {extra}
        """;

    public async Task InitializeAsync() => await StartAsync(Yaml());

    public async Task StartAsync(string yaml)
    {
        var path = Path.Combine(_dir.FullName, "deployment.yaml");
        await File.WriteAllTextAsync(path, yaml);
        var config = HostConfigLoader.Load(path);
        var metrics = new ServingMetrics();
        Engine = InferenceEngine.Start(config, NullLoggerFactory.Instance, metrics);
        _app = ApiServer.Build(ApiOptions.FromConfig(config), Engine, metrics, NullLoggerProvider.Instance);
        await _app.StartAsync();
        BaseAddress = new Uri(_app.Urls.First());
        Client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public Task<(int Status, System.Text.Json.Nodes.JsonNode Body)> PostAsync(string path, object body) => HttpJson.PostAsync(Client, path, body);

    public Task<(int Status, System.Text.Json.Nodes.JsonNode Body)> GetAsync(string path) => HttpJson.GetAsync(Client, path);

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
}
