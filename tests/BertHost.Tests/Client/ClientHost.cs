using System.Text.Json.Nodes;
using BertHost.Client;
using BertHost.Tests.Plugins;
using BertHost.Tests.Protocols;
using BertHost.Tests.Support;

namespace BertHost.Tests.Client;

/// <summary>
/// The real host with a head of every kind (the protocol tests' deployment plus a third-party <c>echo-cls</c> head) on
/// 127.0.0.1, a <see cref="BertHostClient"/> made by <see cref="BertHostClient.Create(BertHostClientOptions)"/> (the DI
/// path with its resilience pipeline) and a plain HttpClient for the answers the typed calls are compared with.
/// </summary>
public sealed class ClientHost : IAsyncLifetime
{
    private TestHost? _host;

    public TestHost Host => _host ?? throw new InvalidOperationException("the host has not started");
    public BertHostClient Client { get; private set; } = null!;
    public HttpClient Http => Host.Client;

    public async Task InitializeAsync()
    {
        _host = await TestHost.StartAsync(ProtocolHost.Yaml(extra: $"""
              - name: echo
                kind: echo-cls
                plugin: {HeadTestSupport.TestHeadsPlugin}
                options: {"{"} dims: 3 {"}"}
            """));
        Client = BertHostClient.Create(new BertHostClientOptions { BaseAddress = Host.BaseAddress, RetryDelay = TimeSpan.FromMilliseconds(10) });
    }

    /// <summary>The outputs of <c>POST /v1/heads/{head}/predict</c> as the host sends them.</summary>
    public async Task<JsonArray> RawOutputsAsync(string head, object inputs, object? parameters = null)
    {
        var (status, body) = await Host.PostAsync($"/v1/heads/{head}/predict", parameters is null ? new { inputs } : new { inputs, parameters });
        Assert.True(status == 200, body.ToJsonString());
        return body["outputs"]!.AsArray();
    }

    public async Task DisposeAsync()
    {
        Client?.Dispose();
        if (_host is not null) await _host.DisposeAsync();
    }
}
