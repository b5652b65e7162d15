using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// The load-time check of <see cref="CpuAttention"/> for a body's head count and size: packed sequences of several
/// lengths (one token, odd lengths, past one 128-query block) and a padded batch with prefix masks, against libtorch's
/// SDPA on each sequence. A body whose check fails serves its attention with SDPA.
/// </summary>
internal static class AttentionKernelCheck
{
    private static readonly int[] Lengths = [1, 5, 17, 64, 129];

    /// <returns>Null when the kernel agrees with SDPA; otherwise how it differs.</returns>
    public static string? Disagreement(int heads, int headDim, bool fault = false)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using var generator = new Generator(4321);
        var hidden = heads * headDim;
        var rows = Lengths.Sum();
        Tensor Random() => randn([rows, hidden], generator: generator);
        var (q, k, v) = (Random(), Random(), Random());

        var starts = new int[Lengths.Length + 1];
        for (var i = 0; i < Lengths.Length; i++) starts[i + 1] = starts[i] + Lengths[i];
        var packed = CpuAttention.Run(q, k, v, starts, heads, headDim);
        var expected = cat(Lengths.Select((length, i) => Sdpa(q, k, v, starts[i], length, length, heads, headDim)).ToList(), 0);
        if (Differs(packed, expected, fault) is { } problem) return $"packed sequences of {string.Join("/", Lengths)} tokens: {problem}";

        // A padded batch of two rows of 17 positions whose masks keep 5 and 17 keys; padded queries are computed too.
        const int t = 17;
        int[] keyLengths = [5, t];
        var padded = CpuAttention.RunPadded(q[..(2 * t)], k[..(2 * t)], v[..(2 * t)], t, keyLengths, heads, headDim);
        var paddedExpected = cat(keyLengths.Select((keys, b) => Sdpa(q, k, v, b * t, t, keys, heads, headDim)).ToList(), 0);
        return Differs(padded, paddedExpected, fault) is { } paddedProblem ? $"padded batch with prefix masks: {paddedProblem}" : null;
    }

    /// <summary>SDPA for <paramref name="queries"/> rows from <paramref name="start"/> attending to the first <paramref name="keys"/> of them.</summary>
    private static Tensor Sdpa(Tensor q, Tensor k, Tensor v, int start, int queries, int keys, int heads, int headDim)
    {
        Tensor Heads(Tensor x, int count) => x[start..(start + count)].view(1, count, heads, headDim).transpose(1, 2);
        return nn.functional.scaled_dot_product_attention(Heads(q, queries), Heads(k, keys), Heads(v, keys))
            .transpose(1, 2).reshape(queries, heads * headDim);
    }

    private static string? Differs(Tensor kernel, Tensor sdpa, bool fault)
    {
        var difference = FastPathCheck.RelativeDifference(fault ? kernel.add(1) : kernel, sdpa);
        return difference > FastPathCheck.Float32Tolerance ? $"disagreed with libtorch's SDPA (relative difference {difference:G3})" : null;
    }
}
