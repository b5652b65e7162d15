using BertHost.Client;
using BertHost.Tests.Protocols;

namespace BertHost.Tests.Client;

/// <summary>A host that is not ready is an answer, not an error; a client over the caller's own HttpClient works without the factory.</summary>
public sealed class ClientReadinessTests
{
    [Fact]
    public async Task A_required_head_that_failed_reads_as_not_ready_on_both_readiness_routes()
    {
        var host = new ProtocolHost();
        try
        {
            await host.StartAsync(ProtocolHost.Yaml(extra: ProtocolHost.RequiredFailedHead));
            using var client = BertHostClient.Create(host.BaseAddress);
            var readiness = await client.GetReadinessAsync();
            Assert.False(readiness.IsReady);
            Assert.Equal("not_ready", readiness.Status);
            var needed = readiness.Heads.Single(h => h.Name == "needed");
            Assert.Equal(("failed", true), (needed.State, needed.Required));
            Assert.False(string.IsNullOrEmpty(needed.Error));
            Assert.False(await client.IsServerReadyAsync());
            Assert.False(await client.IsModelReadyAsync("needed"));
            Assert.True(await client.IsServerLiveAsync());

            // Over an HttpClient of the caller's (its BaseAddress, no resilience pipeline): the same calls.
            var own = new BertHostClient(host.Client, new BertHostClientOptions());
            Assert.Equal(host.BaseAddress, own.BaseAddress);
            Assert.False((await own.GetReadinessAsync()).IsReady);
            Assert.Contains("needed", (await own.ListHeadsAsync()).Select(h => h.Name));
            var failed = await Assert.ThrowsAsync<BertHostException>(() => own.PredictAsync("needed", ["a"]));
            Assert.Equal((503, "unavailable"), (failed.Status, failed.ErrorCode));
        }
        finally
        {
            await host.DisposeAsync();
        }
    }
}
