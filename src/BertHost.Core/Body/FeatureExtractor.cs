using BertHost.Abstractions;
using BertHost.Abstractions.Text;
using BertHost.Core.Text;
using static TorchSharp.torch;

namespace BertHost.Core.Body;

/// <summary>One text (optionally a pair) to embed.</summary>
public sealed record EmbedInput(string Text, string? TextPair = null);

/// <summary>
/// The embedding of one input: for <see cref="PoolingMode.None"/> one row per token (special tokens included, padding
/// excluded), otherwise a single row.
/// </summary>
public sealed record EmbedResult(EmbedInput Input, int[] InputIds, int[] TokenTypeIds, float[][] Embedding, bool Pooled, bool Truncated);

/// <summary>
/// Feature extraction like transformers' feature-extraction pipeline: tokenize, run the body in length-sorted
/// batches (so padding stays small) of at most <c>batchSize</c> inputs and <c>maxBatchTokens</c> padded tokens (default
/// <see cref="PassBudget.DefaultTokens"/> for the body's device), pool, and return results in input order. Longest first: the first pass allocates
/// the largest blocks and every later, shorter pass fits in what it freed. Shortest first, each pass needed slightly
/// larger blocks than any freed before; the heap grew with stranded blocks that a trim then returned and the next pass
/// faulted back in (5,000 SST-2 sentences, int8, batches of 32: about 400k → 230k page faults).
/// </summary>
public sealed class FeatureExtractor(BertBody body, PoolingMode pooling, int batchSize = 32, int? maxLength = null,
    TruncationStrategy truncation = TruncationStrategy.LongestFirst, int? maxBatchTokens = null)
{
    private readonly int _maxBatchTokens = maxBatchTokens ?? PassBudget.DefaultTokens(body.Device);

    public IReadOnlyList<EmbedResult> Embed(IReadOnlyList<EmbedInput> inputs) =>
        Embed(Encode(body.Tokenizer, body.MaxSequenceLength, inputs, maxLength, truncation));

    /// <summary>
    /// Embeds inputs tokenized before the body was ready (<see cref="Encode"/> with the tokenizer of the
    /// <see cref="PreparedBody"/> it came from, and this extractor's maximum length and truncation).
    /// </summary>
    public IReadOnlyList<EmbedResult> Embed(EncodedInputs inputs)
    {
        if (pooling == PoolingMode.Pooler && !body.Model.HasPooler)
            throw new ArgumentException("pooling 'pooler' needs pooler weights, which this checkpoint does not have; use cls or mean");
        if (!ReferenceEquals(inputs.Tokenizer, body.Tokenizer) || inputs.MaxLength != EffectiveMaxLength(body.MaxSequenceLength, maxLength)
            || inputs.Truncation != truncation)
            throw new ArgumentException("the inputs were tokenized for another body, maximum length or truncation than this extractor's");
        var encoded = inputs.Items;
        var results = new EmbedResult[encoded.Length];
        var order = Enumerable.Range(0, encoded.Length).OrderByDescending(i => encoded[i].Sequence.Length).ToArray();
        foreach (var chunk in PassBudget.Cut(order, _ => 1, i => encoded[i].Sequence.Length, _maxBatchTokens, Math.Max(1, batchSize)))
        {
            var batch = PaddedBatch.Create(chunk.Select(i => encoded[i].Sequence).ToList(), body.Tokenizer.PadTokenId);
            var rows = Run(batch, chunk.Select(i => encoded[i].Sequence.Length).ToArray());
            for (var j = 0; j < chunk.Count; j++)
            {
                var (encoding, truncated) = encoded[chunk[j]];
                results[chunk[j]] = new EmbedResult(inputs.Inputs[chunk[j]], encoding.InputIds, encoding.TokenTypeIds, rows[j], pooling != PoolingMode.None, truncated);
            }
        }
        return results;
    }

    private static int EffectiveMaxLength(int bodyMaxLength, int? maxLength) => Math.Min(maxLength ?? bodyMaxLength, bodyMaxLength);

    /// <summary>
    /// Tokenizes on every core (the tokenizer is thread-safe, as concurrent requests rely on): a twentieth of an embed
    /// run over short texts single-threaded. Inputs longer than the maximum length are truncated (and marked so). A bad
    /// input's exception surfaces as itself, not wrapped.
    /// </summary>
    /// <param name="bodyMaxLength">The body's <see cref="BertBody.MaxSequenceLength"/> (or its <see cref="PreparedBody"/>'s).</param>
    public static EncodedInputs Encode(BertTextTokenizer tokenizer, int bodyMaxLength, IReadOnlyList<EmbedInput> inputs, int? maxLength = null,
        TruncationStrategy truncation = TruncationStrategy.LongestFirst)
    {
        var limit = EffectiveMaxLength(bodyMaxLength, maxLength);
        var encoded = new (EncodedSequence, bool)[inputs.Count];
        try
        {
            Parallel.For(0, inputs.Count, i => encoded[i] = Encode(tokenizer, inputs[i], limit, truncation));
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
        return new EncodedInputs(inputs, tokenizer, limit, truncation, encoded);
    }

    private static (EncodedSequence Sequence, bool Truncated) Encode(BertTextTokenizer tokenizer, EmbedInput input, int maxLength, TruncationStrategy truncation)
    {
        var full = tokenizer.Encode(input.Text, input.TextPair, new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate })[0];
        if (full.Length <= maxLength) return (full, false);
        var cut = tokenizer.Encode(input.Text, input.TextPair, new EncodeOptions { MaxLength = maxLength, Truncation = truncation })[0];
        return (cut, true);
    }

    private float[][][] Run(PaddedBatch batch, int[] lengths)
    {
        using var scope = NewDisposeScope();
        using var output = body.ForwardSkippingPadding(batch);
        if (pooling == PoolingMode.None)
        {
            var hidden = output.LastHiddenState.to(ScalarType.Float32, CPU).contiguous();
            return lengths.Select((length, b) => Rows(hidden[b].narrow(0, 0, length))).ToArray();
        }
        var pooled = Pooling.Pool(output, pooling).to(ScalarType.Float32, CPU).contiguous();
        return lengths.Select((_, b) => new[] { pooled[b].data<float>().ToArray() }).ToArray();
    }

    private static float[][] Rows(Tensor matrix)
    {
        var contiguous = matrix.contiguous();
        var h = (int)contiguous.shape[1];
        var flat = contiguous.data<float>().ToArray();
        return Enumerable.Range(0, (int)contiguous.shape[0]).Select(r => flat.AsSpan(r * h, h).ToArray()).ToArray();
    }
}

/// <summary>Inputs tokenized for a body (<see cref="FeatureExtractor.Encode"/>), ready for <see cref="FeatureExtractor.Embed(EncodedInputs)"/>.</summary>
public sealed class EncodedInputs
{
    internal EncodedInputs(IReadOnlyList<EmbedInput> inputs, BertTextTokenizer tokenizer, int maxLength, TruncationStrategy truncation,
        (EncodedSequence Sequence, bool Truncated)[] items)
    {
        Inputs = inputs;
        Tokenizer = tokenizer;
        MaxLength = maxLength;
        Truncation = truncation;
        Items = items;
    }

    public IReadOnlyList<EmbedInput> Inputs { get; }

    internal BertTextTokenizer Tokenizer { get; }

    internal int MaxLength { get; }

    internal TruncationStrategy Truncation { get; }

    internal (EncodedSequence Sequence, bool Truncated)[] Items { get; }
}
