using BertHost.Tests.Plugins;
using BertHost.Tests.Support;

namespace BertHost.Tests.Protocols;

/// <summary>
/// The real host with a head of every kind on tiny-bert (the built-in heads imported from the Hugging Face task
/// folders the head tests check against the reference, two embedding heads, a fresh classifier, an optional head that
/// fails to load): what the protocol routes (OpenAI, TEI, KServe) are tested on.
/// </summary>
public sealed class ProtocolHost : IAsyncLifetime
{
    private TestHost? _host;

    private TestHost Host => _host ?? throw new InvalidOperationException("the host has not started");
    public HttpClient Client => Host.Client;
    public Uri BaseAddress => Host.BaseAddress;

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
            plugin: {TestHost.Plugin("BertHost.Heads.Embedding")}
          - name: emb8
            kind: embedding
            plugin: {TestHost.Plugin("BertHost.Heads.Embedding")}
            options: {"{"} dimensions: 8, pooling: cls {"}"}
          - name: sentiment
            kind: text-classification
            plugin: {TestHost.Plugin("BertHost.Heads.Classification")}
            labels: [negative, positive]
            options: {"{"} pooling: cls {"}"}
        {TestHost.ImportedHeads(classification: "cross")}
          - name: broken
            kind: throws-in-create
            plugin: {HeadTestSupport.TestHeadsPlugin}
            required: false
        {extra}
        """;

    /// <summary>A head entry for <see cref="Yaml"/>'s <c>extra</c> that fails to load and is required: the host is then not ready.</summary>
    public static string RequiredFailedHead => $"""
          - name: needed
            kind: throws-in-create
            plugin: {HeadTestSupport.TestHeadsPlugin}
        """;

    public async Task InitializeAsync() => await StartAsync(Yaml());

    public async Task StartAsync(string yaml) => _host = await TestHost.StartAsync(yaml);

    public Task<(int Status, System.Text.Json.Nodes.JsonNode Body)> PostAsync(string path, object body) => Host.PostAsync(path, body);

    public Task<(int Status, System.Text.Json.Nodes.JsonNode Body)> GetAsync(string path) => Host.GetAsync(path);

    public async Task DisposeAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
    }
}
