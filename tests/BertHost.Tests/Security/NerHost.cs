using System.Text.Json.Nodes;
using BertHost.Api;
using BertHost.Core.Config;
using BertHost.Core.Serving;
using BertHost.Tests.Heads.TokenClassification;
using BertHost.Tests.Plugins;
using BertHost.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging.Abstractions;

namespace BertHost.Tests.Security;

/// <summary>
/// The real host over tiny-bert (windows of 64 tokens) with a token-classification head <c>ner</c> and a classifier
/// <c>sentiment</c>, and small work limits: 600 tokens per input, 1,000 per request, 800 in the queue, 20,000-byte responses.
/// </summary>
internal sealed class NerHost : IAsyncDisposable
{
    private readonly TempFolder _folder = new();
    private WebApplication _app = null!;

    public InferenceEngine Engine { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;

    public static async Task<NerHost> StartAsync()
    {
        var host = new NerHost();
        var path = Path.Combine(host._folder.Path, "ner.yaml");
        File.WriteAllText(path, $"""
            host:
              urls: "http://127.0.0.1:0"
              max_input_tokens: 600
              max_request_tokens: 1000
              max_response_bytes: 20000
            body:
              checkpoint: {ReferenceOutputs.ModelFolder("tiny-bert")}
              device: cpu
            batching:
              max_wait_ms: 1
              max_queued_tokens: 800
            heads:
              - name: ner
                kind: token-classification
                plugin: {TokenClassificationSupport.TokenClassificationPlugin}
                labels: [O, B-PER, I-PER, B-LOC, I-LOC]
              - name: sentiment
                kind: text-classification
                plugin: {HeadTestSupport.ClassificationPlugin}
                labels: [negative, positive]
            """);
        var config = HostConfigLoader.Load(path);
        var metrics = new ServingMetrics();
        host.Engine = InferenceEngine.Start(config, NullLoggerFactory.Instance, metrics);
        host._app = ApiServer.Build(ApiOptions.FromConfig(config), host.Engine, metrics, NullLoggerProvider.Instance);
        await host._app.StartAsync();
        host.Client = new HttpClient { BaseAddress = new Uri(host._app.Urls.First()), Timeout = TimeSpan.FromSeconds(60) };
        return host;
    }

    public Task<(int Status, JsonNode Body)> PostAsync(string path, object body) => HttpJson.PostAsync(Client, path, body);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        await Engine.DisposeAsync();
        _folder.Dispose();
    }
}
