namespace BertHost.Client;

// text-embeddings-inference's routes, errors in TEI's shape.
public sealed partial class BertHostClient
{
    private sealed record EmbedBody(IReadOnlyList<string> Inputs, bool? Normalize, bool? Truncate, string? TruncationDirection, int? Dimensions, string? Model);

    private sealed record RerankBody(string Query, IReadOnlyList<string> Texts, bool? RawScores, bool? ReturnText, bool? Truncate, string? Model);

    private sealed record TokenizeBody(IReadOnlyList<string> Inputs, bool AddSpecialTokens);

    /// <summary>text-embeddings-inference's <c>POST /embed</c>: one vector per input.</summary>
    public Task<float[][]> EmbedAsync(IEnumerable<string> inputs, TeiEmbedOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= new TeiEmbedOptions();
        var body = new EmbedBody(inputs.ToList(), options.Normalize, options.Truncate, options.TruncationDirection, options.Dimensions, options.Model);
        return SendAsync<float[][]>(HttpMethod.Post, "embed", Json(body), ErrorShape.Tei, true, cancellationToken);
    }

    /// <summary>text-embeddings-inference's <c>POST /rerank</c>: the texts ranked against the query by a cross-encoder, best first.</summary>
    public async Task<IReadOnlyList<RerankResult>> RerankAsync(string query, IEnumerable<string> texts, RerankOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(texts);
        options ??= new RerankOptions();
        var body = new RerankBody(query, texts.ToList(), options.RawScores, options.ReturnText, options.Truncate, options.Model);
        return await SendAsync<List<RerankResult>>(HttpMethod.Post, "rerank", Json(body), ErrorShape.Tei, true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>text-embeddings-inference's <c>POST /tokenize</c>: the served body's tokens of each input, with offsets.</summary>
    public async Task<IReadOnlyList<IReadOnlyList<TeiToken>>> TokenizeAsync(IEnumerable<string> inputs, bool addSpecialTokens = true,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var body = new TokenizeBody(inputs.ToList(), addSpecialTokens);
        return await SendAsync<List<List<TeiToken>>>(HttpMethod.Post, "tokenize", Json(body), ErrorShape.Tei, true, cancellationToken).ConfigureAwait(false);
    }
}
