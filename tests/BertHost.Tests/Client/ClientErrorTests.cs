using System.Net;
using BertHost.Client;

namespace BertHost.Tests.Client;

/// <summary>Failures reach the caller as <see cref="BertHostException"/> with the status and each route family's code, field and message.</summary>
public sealed class ClientErrorTests(ClientHost host) : IClassFixture<ClientHost>
{
    private BertHostClient Client => host.Client;

    [Fact]
    public async Task Host_routes_answer_the_status_code_field_and_message()
    {
        var unknown = await Assert.ThrowsAsync<BertHostException>(() => Client.GetHeadAsync("nope"));
        Assert.Equal((HttpStatusCode.NotFound, "unknown_head", ErrorShape.Native), (unknown.StatusCode, unknown.ErrorCode, unknown.Shape));
        Assert.Equal("no head named 'nope'", unknown.Detail);
        Assert.Equal("GET /v1/heads/nope: 404 unknown_head: no head named 'nope'", unknown.Message);
        Assert.Null(unknown.RetryAfter);

        var invalid = await Assert.ThrowsAsync<BertHostException>(() => Client.ClassifyAsync("sentiment", ["fine", new TextInput(" ")]));
        Assert.Equal((422, "invalid_input", "inputs[1].text"), (invalid.Status, invalid.ErrorCode, invalid.Field));
        Assert.Contains("empty", invalid.Detail);
        Assert.Contains("\"field\":\"inputs[1].text\"", invalid.ResponseBody!.Replace(" ", ""));

        var misspelt = await Assert.ThrowsAsync<BertHostException>(() => Client.PredictAsync("sentiment", ["fine"], new { topk = 2 }));
        Assert.Equal((400, "bad_request", "parameters.topk"), (misspelt.Status, misspelt.ErrorCode, misspelt.Field));
        Assert.Contains("did you mean 'top_k'", misspelt.Detail);

        var twice = await Assert.ThrowsAsync<BertHostException>(() => Client.PredictManyAsync(["emb", "emb"], ["a"]));
        Assert.Equal((400, "heads[1]"), (twice.Status, twice.Field));

        var stale = await Assert.ThrowsAsync<BertHostException>(() => Client.PredictAsync("broken", ["a"]));
        Assert.Equal((503, "unavailable"), (stale.Status, stale.ErrorCode));
        Assert.Null(stale.RetryAfter);   // a head that failed to load does not clear by waiting

        // A head name cannot reach another route: it is one escaped path segment (GET /v1/body would answer 200).
        var escaped = await Assert.ThrowsAsync<BertHostException>(() => Client.GetHeadAsync("../body"));
        Assert.Equal((404, "unknown_head"), (escaped.Status, escaped.ErrorCode));
        Assert.Equal("v1/heads/..%2Fbody", escaped.Path);
        await Assert.ThrowsAsync<ArgumentException>(() => Client.GetHeadAsync(""));
    }

    [Fact]
    public async Task Jobs_disabled_is_a_typed_404()
    {
        var disabled = await Assert.ThrowsAsync<BertHostException>(() => Client.ListJobsAsync());
        Assert.Equal((404, "jobs_disabled"), (disabled.Status, disabled.ErrorCode));
    }

    [Fact]
    public async Task OpenAi_errors_carry_param_type_and_code()
    {
        var unknown = await Assert.ThrowsAsync<BertHostException>(() => Client.CreateEmbeddingsAsync(["x"], new OpenAiEmbeddingOptions { Model = "nope" }));
        Assert.Equal((404, ErrorShape.OpenAi, "unknown_head", "model", "not_found_error"),
            (unknown.Status, unknown.Shape, unknown.ErrorCode, unknown.Field, unknown.ErrorType));
        Assert.StartsWith("no head named 'nope' (heads of kind embedding: emb, emb8)", unknown.Detail);

        var wide = await Assert.ThrowsAsync<BertHostException>(() => Client.CreateEmbeddingsAsync(["x"], new OpenAiEmbeddingOptions { Model = "emb8", Dimensions = 9 }));
        Assert.Equal((400, "invalid_request_error"), (wide.Status, wide.ErrorType));
        Assert.Contains("dimensions must be at most 8", wide.Detail);
        Assert.Equal("inputs[0].parameters.dimensions", wide.Field);   // as the host names it (the head refuses the first input)

        var unnamed = await Assert.ThrowsAsync<BertHostException>(() => Client.CreateEmbeddingsAsync(["x"]));
        Assert.Equal((400, "model"), (unnamed.Status, unnamed.Field));
    }

    [Fact]
    public async Task Tei_errors_carry_the_error_type_and_the_field_of_the_message()
    {
        var empty = await Assert.ThrowsAsync<BertHostException>(() => Client.EmbedAsync(["a", ""], new TeiEmbedOptions { Model = "emb" }));
        Assert.Equal((422, ErrorShape.Tei, "validation", "inputs[1].text"), (empty.Status, empty.Shape, empty.ErrorType, empty.Field));
        Assert.Equal("inputs[1].text: text is empty", empty.Detail);
        Assert.Null(empty.ErrorCode);

        var wrongKind = await Assert.ThrowsAsync<BertHostException>(() => Client.RerankAsync("q", ["a"], new RerankOptions { Model = "emb" }));
        Assert.Equal((400, "model"), (wrongKind.Status, wrongKind.Field));
        Assert.Contains("head 'emb' is a embedding head", wrongKind.Detail);

        // A message that starts with its field carries no "field: " prefix: the field is not guessed.
        var direction = await Assert.ThrowsAsync<BertHostException>(() => Client.EmbedAsync(["a"], new TeiEmbedOptions { Model = "emb", TruncationDirection = "Up" }));
        Assert.Equal((400, null), (direction.Status, direction.Field));
        Assert.Equal("truncation_direction 'up' is not one of Left, Right", direction.Detail);
    }

    [Fact]
    public async Task KServe_errors_carry_the_message_and_its_field()
    {
        var shape = await Assert.ThrowsAsync<BertHostException>(() =>
            Client.InferAsync("emb", new InferenceRequest(new InferenceInput("text", [2], "BYTES", new[] { "a" }))));
        Assert.Equal((400, ErrorShape.KServe, "inputs[0].data"), (shape.Status, shape.Shape, shape.Field));
        Assert.Equal("inputs[0].data: shape [2] holds 2 elements but data has 1", shape.Detail);

        var unknown = await Assert.ThrowsAsync<BertHostException>(() => Client.GetModelMetadataAsync("nope"));
        Assert.Equal(404, unknown.Status);
        Assert.StartsWith("no model named 'nope'", unknown.Detail);
        Assert.Null(unknown.Field);
        await Assert.ThrowsAsync<BertHostException>(() => Client.IsModelReadyAsync("nope"));

        var notReady = await Assert.ThrowsAsync<BertHostException>(() => Client.InferAsync("broken", new InferenceRequest(InferenceInput.Bytes("text", "a"))));
        Assert.Equal(503, notReady.Status);
    }

    [Fact]
    public async Task A_cancelled_token_cancels_the_call()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.ListHeadsAsync(cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.PredictAsync("emb", ["a"], null, cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.CreateEmbeddingsAsync(["a"], null, cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.EmbedAsync(["a"], null, cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.InferAsync("emb", new InferenceRequest(InferenceInput.Bytes("text", "a")), cancelled.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.WaitForJobAsync("x", null, cancelled.Token));
    }
}
