namespace BertHost.Tests.Protocols;

/// <summary>Readiness on the health checks: a required head that failed keeps the host out of rotation; an optional one does not.</summary>
public sealed class ReadinessTests
{
    [Fact]
    public async Task A_required_head_that_failed_makes_readyz_and_v2_ready_503_an_optional_one_does_not()
    {
        var host = new ProtocolHost();
        try
        {
            await host.StartAsync(ProtocolHost.Yaml(extra: ProtocolHost.RequiredFailedHead));
            var (status, body) = await host.GetAsync("/readyz");
            Assert.Equal(503, status);
            Assert.Equal("not_ready", body["status"]!.GetValue<string>());
            var heads = body["heads"]!.AsArray().ToDictionary(h => h!["name"]!.GetValue<string>(), h => h!);
            Assert.False(heads["broken"]["required"]!.GetValue<bool>());
            Assert.True(heads["needed"]["required"]!.GetValue<bool>());
            Assert.Equal("failed", heads["needed"]["state"]!.GetValue<string>());
            (status, body) = await host.GetAsync("/v2/health/ready");
            Assert.Equal((503, false), (status, body["ready"]!.GetValue<bool>()));
            // Liveness is about the process, not the heads; the other heads still serve.
            Assert.Equal(200, (await host.GetAsync("/healthz")).Status);
            Assert.Equal(200, (await host.GetAsync("/v2/health/live")).Status);
            Assert.Equal(200, (await host.PostAsync("/v1/heads/emb/predict", new { inputs = new[] { "a" } })).Status);
        }
        finally
        {
            await host.DisposeAsync();
        }
    }
}
