using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// The load-time check of <see cref="LowRankRows"/>: a rank-4 update over a range of rows that starts and ends inside
/// 64-row chunks (so the OpenMP split is covered where the team has more than one thread) against libtorch's two GEMMs
/// on the same rows. A body whose check fails adds its LoRA updates with libtorch.
/// </summary>
internal static class LowRankRowsCheck
{
    /// <returns>Null when the kernel agrees with libtorch; otherwise how it differs.</returns>
    public static string? Disagreement(bool fault = false)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using var generator = new Generator(977);
        const int first = 10, end = 290;
        var (x, y, a, b, expected) = Case(generator, first, end);
        LowRankRows.Add(x, y, a, b, 0.5f, first, end);
        var difference = FastPathCheck.RelativeDifference(fault ? y.add(1) : y, expected);
        return difference > FastPathCheck.Float32Tolerance ? $"disagreed with libtorch's GEMMs (relative difference {difference:G3})" : null;
    }

    /// <summary>
    /// Random x [300, 48], y [300, 40] (a column view of a wider tensor, as the stacked Q, K, V projection of an int8 body
    /// hands it over), A [4, 48], B [40, 4] and what y becomes when rows
    /// [<paramref name="first"/>, <paramref name="end"/>) get 0.5 · x·Aᵀ·Bᵀ, computed with libtorch's GEMMs.
    /// </summary>
    internal static (Tensor X, Tensor Y, Tensor A, Tensor B, Tensor Expected) Case(Generator generator, int first, int end)
    {
        var x = randn([300, 48], generator: generator);
        var y = randn([300, 100], generator: generator).narrow(1, 30, 40);
        var a = randn([4, 48], generator: generator);
        var b = randn([40, 4], generator: generator);
        var expected = y.clone();
        expected.narrow(0, first, end - first).add_(x.narrow(0, first, end - first).matmul(a.t()).matmul(b.t()).mul(0.5));
        return (x, y, a, b, expected);
    }
}
