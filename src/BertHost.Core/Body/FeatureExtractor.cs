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

    private readonly int _maxLength = Math.Min(maxLength ?? body.MaxSequenceLength, body.MaxSequenceLength);

    public IReadOnlyList<EmbedResult> Embed(IReadOnlyList<EmbedInput> inputs)
    {
        if (pooling == PoolingMode.Pooler && !body.Model.HasPooler)
            throw new ArgumentException("pooling 'pooler' needs pooler weights, which this checkpoint does not have; use cls or mean");
        var encoded = EncodeAll(inputs);
        var results = new EmbedResult[inputs.Count];
        var order = Enumerable.Range(0, inputs.Count).OrderByDescending(i => encoded[i].Sequence.Length).ToArray();
        foreach (var chunk in PassBudget.Cut(order, _ => 1, i => encoded[i].Sequence.Length, _maxBatchTokens, Math.Max(1, batchSize)))
        {
            var batch = PaddedBatch.Create(chunk.Select(i => encoded[i].Sequence).ToList(), body.Tokenizer.PadTokenId);
            var rows = Run(batch, chunk.Select(i => encoded[i].Sequence.Length).ToArray());
            for (var j = 0; j < chunk.Count; j++)
            {
                var (encoding, truncated) = encoded[chunk[j]];
                results[chunk[j]] = new EmbedResult(inputs[chunk[j]], encoding.InputIds, encoding.TokenTypeIds, rows[j], pooling != PoolingMode.None, truncated);
            }
        }
        return results;
    }

    /// <summary>
    /// Tokenizes on every core (the tokenizer is thread-safe, as concurrent requests rely on): a twentieth of an embed
    /// run over short texts single-threaded. A bad input's exception surfaces as itself, not wrapped.
    /// </summary>
    private (EncodedSequence Sequence, bool Truncated)[] EncodeAll(IReadOnlyList<EmbedInput> inputs)
    {
        var encoded = new (EncodedSequence, bool)[inputs.Count];
        try
        {
            Parallel.For(0, inputs.Count, i => encoded[i] = Encode(inputs[i]));
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
        return encoded;
    }

    private (EncodedSequence Sequence, bool Truncated) Encode(EmbedInput input)
    {
        var full = body.Tokenizer.Encode(input.Text, input.TextPair, new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate })[0];
        if (full.Length <= _maxLength) return (full, false);
        var cut = body.Tokenizer.Encode(input.Text, input.TextPair, new EncodeOptions { MaxLength = _maxLength, Truncation = truncation })[0];
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
