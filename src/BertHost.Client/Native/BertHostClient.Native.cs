using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace BertHost.Client;

// The host's own routes: heads, predict, body, health, metrics, the OpenAPI document.
public sealed partial class BertHostClient
{
    private sealed record PredictBody(IReadOnlyList<object?> Inputs, object? Parameters);

    private sealed record PredictManyBody(IReadOnlyList<string> Heads, IReadOnlyList<object?> Inputs, object? Parameters);

    private sealed record OutputsBody<T>(IReadOnlyList<T> Outputs);

    /// <summary><c>GET /v1/heads</c>: every configured head, in configuration order, with its state.</summary>
    public async Task<IReadOnlyList<HeadInfo>> ListHeadsAsync(CancellationToken cancellationToken = default) =>
        (await SendAsync<HeadList>(HttpMethod.Get, "v1/heads", null, ErrorShape.Native, true, cancellationToken).ConfigureAwait(false)).Heads;

    /// <summary><c>GET /v1/heads/{name}</c>: one head with its kind-specific details (404 <c>unknown_head</c>).</summary>
    public Task<HeadDetail> GetHeadAsync(string name, CancellationToken cancellationToken = default) =>
        SendAsync<HeadDetail>(HttpMethod.Get, "v1/heads/" + Segment(name, nameof(name)), null, ErrorShape.Native, true, cancellationToken);

    /// <summary>
    /// <c>POST /v1/heads/{head}/predict</c> with any head kind: each input is serialised as JSON (a string, a record, a
    /// <see cref="JsonElement"/>...), <paramref name="parameters"/> likewise (an object; null sends none). The outputs
    /// come back as the head wrote them.
    /// </summary>
    public async Task<PredictResponse> PredictAsync(string head, IEnumerable<object?> inputs, object? parameters = null,
        CancellationToken cancellationToken = default)
    {
        var path = $"v1/heads/{Segment(head, nameof(head))}/predict";
        var body = new PredictBody(List(inputs, nameof(inputs)), parameters);
        var answer = await SendAsync<OutputsBody<JsonElement>>(HttpMethod.Post, path, Json(body), ErrorShape.Native, true, cancellationToken).ConfigureAwait(false);
        return new PredictResponse(answer.Outputs);
    }

    /// <summary><see cref="PredictAsync(string, IEnumerable{object?}, object?, CancellationToken)"/> with each output read as <typeparamref name="T"/>.</summary>
    public async Task<IReadOnlyList<T>> PredictAsync<T>(string head, IEnumerable<object?> inputs, object? parameters = null,
        CancellationToken cancellationToken = default) =>
        (await PredictAsync(head, inputs, parameters, cancellationToken).ConfigureAwait(false)).As<T>();

    /// <summary>
    /// <c>POST /v1/predict</c>: the inputs through several heads, one body pass per input (identical token sequences of
    /// several heads share a row); per input, each head's output by head name.
    /// </summary>
    public async Task<PredictManyResponse> PredictManyAsync(IEnumerable<string> heads, IEnumerable<object?> inputs, object? parameters = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(heads);
        var body = new PredictManyBody(heads.ToList(), List(inputs, nameof(inputs)), parameters);
        var answer = await SendAsync<OutputsBody<Dictionary<string, JsonElement>>>(HttpMethod.Post, "v1/predict", Json(body), ErrorShape.Native, true,
            cancellationToken).ConfigureAwait(false);
        return new PredictManyResponse(answer.Outputs.Select(o => (IReadOnlyDictionary<string, JsonElement>)o).ToList());
    }

    /// <summary>A text-classification head's label and scores per input.</summary>
    public Task<IReadOnlyList<ClassificationResult>> ClassifyAsync(string head, IEnumerable<TextInput> inputs, ClassificationParameters? parameters = null,
        CancellationToken cancellationToken = default) =>
        PredictAsync<ClassificationResult>(head, List(inputs, nameof(inputs)), parameters, cancellationToken);

    /// <summary>A token-classification head's entities per input (sub-tokens, or groups with an aggregation).</summary>
    public Task<IReadOnlyList<IReadOnlyList<TokenEntity>>> ExtractEntitiesAsync(string head, IEnumerable<TokenClassificationInput> inputs,
        TokenClassificationParameters? parameters = null, CancellationToken cancellationToken = default) =>
        PredictAsync<IReadOnlyList<TokenEntity>>(head, List(inputs, nameof(inputs)), parameters, cancellationToken);

    /// <summary>A question-answering head's best answer per input.</summary>
    public Task<IReadOnlyList<QuestionAnsweringResult>> AnswerAsync(string head, IEnumerable<QuestionAnsweringInput> inputs,
        QuestionAnsweringParameters? parameters = null, CancellationToken cancellationToken = default) =>
        PredictAsync<QuestionAnsweringResult>(head, List(inputs, nameof(inputs)), parameters, cancellationToken);

    /// <summary>A question-answering head's <paramref name="topK"/> best answers per input, best first.</summary>
    public async Task<IReadOnlyList<IReadOnlyList<QuestionAnsweringResult>>> AnswerTopAsync(string head, IEnumerable<QuestionAnsweringInput> inputs, int topK,
        QuestionAnsweringParameters? parameters = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(topK, 1);
        var merged = parameters is null ? new JsonObject() : JsonSerializer.SerializeToNode(parameters, JsonOptions)!.AsObject();
        merged["top_k"] = topK;
        var response = await PredictAsync(head, List(inputs, nameof(inputs)), merged, cancellationToken).ConfigureAwait(false);
        // The head answers one object with top_k 1 and a list above it.
        return response.Outputs.Select(o => o.ValueKind == JsonValueKind.Array
            ? o.Deserialize<IReadOnlyList<QuestionAnsweringResult>>(JsonOptions)!
            : [o.Deserialize<QuestionAnsweringResult>(JsonOptions)!]).ToList();
    }

    /// <summary>A multiple-choice head's choice, logits and probabilities per input.</summary>
    public Task<IReadOnlyList<MultipleChoiceResult>> ChooseAsync(string head, IEnumerable<MultipleChoiceInput> inputs,
        CancellationToken cancellationToken = default) =>
        PredictAsync<MultipleChoiceResult>(head, List(inputs, nameof(inputs)), null, cancellationToken);

    /// <summary>An embedding head's vectors through the host's own predict route (see also <see cref="CreateEmbeddingsAsync"/>).</summary>
    public Task<IReadOnlyList<EmbeddingOutput>> EmbedWithHeadAsync(string head, IEnumerable<string> texts, EmbeddingParameters? parameters = null,
        CancellationToken cancellationToken = default) =>
        PredictAsync<EmbeddingOutput>(head, List(texts, nameof(texts)), parameters, cancellationToken);

    /// <summary><c>GET /v1/body</c>: the shared body's fingerprint, device, sizes, fast paths and passes so far.</summary>
    public Task<BodyInfo> GetBodyAsync(CancellationToken cancellationToken = default) =>
        SendAsync<BodyInfo>(HttpMethod.Get, "v1/body", null, ErrorShape.Native, true, cancellationToken);

    /// <summary><c>GET /healthz</c>: answers while the process serves (no key needed).</summary>
    public Task<Liveness> GetLivenessAsync(CancellationToken cancellationToken = default) =>
        SendAsync<Liveness>(HttpMethod.Get, "healthz", null, ErrorShape.Native, true, cancellationToken);

    /// <summary><c>GET /readyz</c>: whether the host is ready, and each head's state (503 is read as "not ready", not thrown).</summary>
    public Task<Readiness> GetReadinessAsync(CancellationToken cancellationToken = default) =>
        SendAsync<Readiness>(HttpMethod.Get, "readyz", null, ErrorShape.Native, false, cancellationToken, HttpStatusCode.ServiceUnavailable);

    /// <summary><c>GET /metrics</c>: the Prometheus text exposition.</summary>
    public Task<string> GetMetricsAsync(CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Get, "metrics", null, ErrorShape.Native, true,
            (response, token) => response.Content.ReadAsStringAsync(token), cancellationToken);

    /// <summary><c>GET /openapi.json</c>: the OpenAPI document generated from the host's endpoints.</summary>
    public Task<JsonElement> GetOpenApiDocumentAsync(CancellationToken cancellationToken = default) =>
        SendAsync<JsonElement>(HttpMethod.Get, "openapi.json", null, ErrorShape.Native, true, cancellationToken);

    private static List<object?> List<T>(IEnumerable<T> items, string parameter)
    {
        ArgumentNullException.ThrowIfNull(items, parameter);
        return items.Select(i => (object?)i).ToList();
    }
}
