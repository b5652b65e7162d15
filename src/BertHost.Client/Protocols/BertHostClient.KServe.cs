using System.Net;

namespace BertHost.Client;

// The Open Inference Protocol (KServe v2): every head is a model. Errors in its {"error"} shape.
public sealed partial class BertHostClient
{
    private sealed record ServerLive(bool Live);

    private sealed record ServerReady(bool Ready);

    private sealed record ModelReadiness(string Name, bool Ready);

    /// <summary><c>GET /v2/health/live</c> (no key needed).</summary>
    public async Task<bool> IsServerLiveAsync(CancellationToken cancellationToken = default) =>
        (await SendAsync<ServerLive>(HttpMethod.Get, "v2/health/live", null, ErrorShape.KServe, true, cancellationToken).ConfigureAwait(false)).Live;

    /// <summary><c>GET /v2/health/ready</c>: ready as <c>/readyz</c> (503 is read as false; no key needed).</summary>
    public async Task<bool> IsServerReadyAsync(CancellationToken cancellationToken = default) =>
        (await SendAsync<ServerReady>(HttpMethod.Get, "v2/health/ready", null, ErrorShape.KServe, false, cancellationToken, HttpStatusCode.ServiceUnavailable)
            .ConfigureAwait(false)).Ready;

    /// <summary><c>GET /v2</c>: the server's name, version and extensions.</summary>
    public Task<ServerMetadata> GetServerMetadataAsync(CancellationToken cancellationToken = default) =>
        SendAsync<ServerMetadata>(HttpMethod.Get, "v2", null, ErrorShape.KServe, true, cancellationToken);

    /// <summary><c>GET /v2/models/{name}</c>: the tensors the head reads and answers.</summary>
    public Task<ModelMetadata> GetModelMetadataAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<ModelMetadata>(HttpMethod.Get, "v2/models/" + Segment(name, nameof(name)), null, ErrorShape.KServe, true, cancellationToken);

    /// <summary><c>GET /v2/models/{name}/ready</c>: whether the head serves (503 is read as false; an unknown model is 404).</summary>
    public async Task<bool> IsModelReadyAsync(string name, CancellationToken cancellationToken = default) =>
        (await SendAsync<ModelReadiness>(HttpMethod.Get, $"v2/models/{Segment(name, nameof(name))}/ready", null, ErrorShape.KServe, false,
            cancellationToken, HttpStatusCode.ServiceUnavailable).ConfigureAwait(false)).Ready;

    /// <summary><c>POST /v2/models/{name}/infer</c>: typed outputs per head kind.</summary>
    public Task<InferenceResponse> InferAsync(string name, InferenceRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SendAsync<InferenceResponse>(HttpMethod.Post, $"v2/models/{Segment(name, nameof(name))}/infer", Json(request), ErrorShape.KServe, true,
            cancellationToken);
    }
}
