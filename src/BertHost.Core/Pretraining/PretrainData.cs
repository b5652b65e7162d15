using BertHost.Core.Text;

namespace BertHost.Core.Pretraining;

/// <summary>One masked micro-batch, flattened row-major: ids and mask [Rows, Length]; the predicted positions
/// (row × Length + column) and their original ids.</summary>
public sealed record MaskedBatch(int Rows, int Length, long[] InputIds, long[] AttentionMask, long[] Positions, long[] Targets, long RealTokens);

/// <summary>
/// Which packed sequences are trained on and which are held out, the order they are drawn in, and their masking.
/// Held-out sequences are spread evenly over the corpus (every source file contributes); training sequences of either
/// phase never overlap their tokens. The order is a fresh seeded permutation per epoch and phase, and the mask of a
/// training sequence depends on the micro-batch number, so any micro-batch can be rebuilt from its number alone.
/// </summary>
internal sealed class PretrainData
{
    private readonly PretrainingOptions _options;
    private readonly PackedSequences _short;
    private readonly PackedSequences? _long;
    private readonly long[] _trainShort;
    private readonly long[]? _trainLong;
    private readonly long[] _eval;
    private List<MaskedBatch>? _evalBatches;
    private MlmMasker? _evalMasker;
    private (int Phase, long Epoch, long[] Order)? _permutation;

    public PretrainData(TokenCache cache, BertTextTokenizer tokenizer, PretrainingOptions options)
    {
        _options = options;
        _short = new PackedSequences(cache, options.SequenceLength, tokenizer.ClsTokenId, tokenizer.SepTokenId, tokenizer.PadTokenId);
        if (_short.Count < 2)
            throw new ArgumentException($"the corpus has {cache.TokenCount} tokens: too few for a training and a held-out sequence of length {options.SequenceLength}");
        var evalCount = (int)Math.Max(1, Math.Min(options.EvalSequences, _short.Count / 10));
        var stride = _short.Count / evalCount;
        _eval = Enumerable.Range(0, evalCount).Select(k => k * stride + stride / 2).ToArray();
        var held = _eval.ToHashSet();
        _trainShort = Range(_short.Count).Where(i => !held.Contains(i)).ToArray();
        if (options.LongSequenceLength is { } longLength)
        {
            _long = new PackedSequences(cache, longLength, tokenizer.ClsTokenId, tokenizer.SepTokenId, tokenizer.PadTokenId);
            _trainLong = Range(_long.Count).Where(j => !OverlapsEval(j * (long)_long.ContentLength, (j + 1) * (long)_long.ContentLength)).ToArray();
            if (_trainLong.Length == 0) throw new ArgumentException($"the corpus is too small for sequences of length {longLength} next to the held-out ones");
        }
    }

    public long TrainSequenceCount => _trainShort.LongLength;

    /// <summary>Micro-batch <paramref name="micro"/> (global number) of optimizer step <paramref name="step"/>.</summary>
    public MaskedBatch TrainBatch(int step, long micro, MlmMasker masker)
    {
        var isLong = _long is not null && step >= _options.LongPhaseStart;
        var packed = isLong ? _long! : _short;
        var train = isLong ? _trainLong! : _trainShort;
        var phaseMicro = micro - (isLong ? (long)_options.LongPhaseStart * _options.GradientAccumulationSteps : 0);
        var indices = new long[_options.BatchSize];
        for (var b = 0; b < indices.Length; b++)
        {
            var k = phaseMicro * _options.BatchSize + b;
            indices[b] = Order(isLong ? 1 : 0, k / train.Length, train)[k % train.Length];
        }
        return Build(packed, indices, masker, new Random((int)Seeds.Mix(_options.Seed, micro)));
    }

    /// <summary>The held-out sequences in batches, each masked once with a fixed seed so every evaluation sees the same task.</summary>
    public IReadOnlyList<MaskedBatch> EvalBatches(MlmMasker masker)
    {
        if (_evalBatches is not null && ReferenceEquals(masker, _evalMasker)) return _evalBatches;
        var rng = new Random((int)Seeds.Mix(_options.Seed, -1));
        _evalBatches = _eval.Chunk(_options.BatchSize).Select(chunk => Build(_short, chunk, masker, rng)).ToList();
        _evalMasker = masker;
        return _evalBatches;
    }

    private long[] Order(int phase, long epoch, long[] train)
    {
        if (_permutation is { } p && p.Phase == phase && p.Epoch == epoch) return p.Order;
        var order = (long[])train.Clone();
        new Random((int)Seeds.Mix(_options.Seed, 1_000_000_007L * (phase + 1) + epoch)).Shuffle(order);
        _permutation = (phase, epoch, order);
        return order;
    }

    private static MaskedBatch Build(PackedSequences packed, IReadOnlyList<long> indices, MlmMasker masker, Random rng)
    {
        var length = packed.SequenceLength;
        var ids = new long[indices.Count * length];
        var attention = new long[ids.Length];
        var positions = new List<long>();
        var targets = new List<long>();
        var raw = new int[length];
        var input = new int[length];
        var labels = new long[length];
        long real = 0;
        for (var r = 0; r < indices.Count; r++)
        {
            var n = packed.Fill(indices[r], raw);
            masker.Mask(raw, n, input, labels, rng);
            real += n;
            for (var t = 0; t < length; t++)
            {
                ids[r * length + t] = input[t];
                attention[r * length + t] = t < n ? 1 : 0;
                if (labels[t] == MlmMasker.IgnoreIndex) continue;
                positions.Add(r * length + t);
                targets.Add(labels[t]);
            }
        }
        return new MaskedBatch(indices.Count, length, ids, attention, positions.ToArray(), targets.ToArray(), real);
    }

    private bool OverlapsEval(long start, long end)
    {
        var c = _short.ContentLength;
        // First held-out sequence ending after start; the eval indices are sorted.
        int lo = 0, hi = _eval.Length;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (_eval[mid] * c + c <= start) lo = mid + 1; else hi = mid;
        }
        return lo < _eval.Length && _eval[lo] * c < end;
    }

    private static IEnumerable<long> Range(long count)
    {
        for (long i = 0; i < count; i++) yield return i;
    }
}

/// <summary>Deterministic seeds derived from the run's seed and a counter (SplitMix64).</summary>
internal static class Seeds
{
    public static long Mix(long seed, long counter)
    {
        unchecked
        {
            var z = (ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)counter + 0x632BE59BD9B4E019UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (long)(z & 0x7FFFFFFF);
        }
    }
}
