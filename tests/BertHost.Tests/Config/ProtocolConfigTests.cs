using BertHost.Core.Config;

namespace BertHost.Tests.Config;

/// <summary>The keys issue 21 added: telemetry (OTLP), protocols (default heads of TEI's routes) and heads' required.</summary>
public sealed class ProtocolConfigTests : IDisposable
{
    private readonly ConfigFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Telemetry_protocols_and_required_are_read_with_defaults()
    {
        var config = _folder.Load("""
            body: { checkpoint: ../models/bert }
            telemetry: { otlp_endpoint: "http://127.0.0.1:4318", otlp_protocol: http/protobuf, service_name: berthost-a }
            protocols: { embed_head: Emb, rerank_head: cross }
            heads:
              - { name: emb, kind: embedding, plugin: ../plugins/Foo }
              - { name: cross, kind: text-classification, plugin: ../plugins/Foo, required: false }
            """);
        Assert.Equal(new Uri("http://127.0.0.1:4318"), config.Telemetry.OtlpEndpoint);
        Assert.Equal("http/protobuf", config.Telemetry.OtlpProtocol);
        Assert.Equal("berthost-a", config.Telemetry.ServiceName);
        Assert.Equal("emb", config.Protocols.EmbedHead);   // head names are compared ignoring case; the head's own spelling is kept
        Assert.Equal("cross", config.Protocols.RerankHead);
        Assert.True(config.Heads[0].Required);
        Assert.False(config.Heads[1].Required);

        var plain = _folder.Load("body: { checkpoint: ../models/bert }");
        Assert.Null(plain.Telemetry.OtlpEndpoint);
        Assert.Equal("grpc", plain.Telemetry.OtlpProtocol);
        Assert.Equal("berthost", plain.Telemetry.ServiceName);
        Assert.Null(plain.Protocols.EmbedHead);
    }

    [Fact]
    public void Bad_values_are_reported_with_their_lines()
    {
        var e = _folder.Fail("""
            body: { checkpoint: ../models/bert }
            telemetry:
              otlp_endpoint: "localhost:4317"
              otlp_protocol: http
              exporter: otlp
            protocols: { embed_head: embedd, rerank: x }
            heads:
              - { name: embed, kind: embedding, plugin: ../plugins/Foo }
              - { name: other, kind: embedding, plugin: ../plugins/Foo, required: maybe }
            """);
        Assert.Equal(
        [
            new ConfigProblem(3, 18, "telemetry.otlp_endpoint", "must be an http:// or https:// address of an OTLP collector (e.g. http://127.0.0.1:4317), got 'localhost:4317'"),
            new ConfigProblem(4, 18, "telemetry.otlp_protocol", "must be grpc or http/protobuf, got 'http'"),
            new ConfigProblem(5, 3, "telemetry.exporter", "unknown key 'exporter' (known keys: otlp_endpoint, otlp_protocol, service_name)"),
            new ConfigProblem(6, 26, "protocols.embed_head", "no head named 'embedd' (did you mean 'embed'?)"),
            new ConfigProblem(6, 34, "protocols.rerank", "unknown key 'rerank' (known keys: embed_head, rerank_head)"),
            new ConfigProblem(9, 71, "heads[1].required", "must be true or false, got 'maybe'"),
        ], e.Problems);
    }
}
