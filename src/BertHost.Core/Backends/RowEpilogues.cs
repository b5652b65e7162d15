using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// Work done on each output row of an int8 projection while the row is still in cache, right after its dequantization
/// (row · magnitude + bias; see <see cref="QuantizedWeights"/>), instead of as separate libtorch operators over the
/// whole output: each of those is a dispatch, an allocation and a pass over memory, on every layer of every pass.
/// </summary>
internal abstract unsafe class RowEpilogue
{
    /// <summary>Finishes output row <paramref name="r"/> (<paramref name="row"/>, its values) in place.</summary>
    public abstract void Apply(Span<float> row, int r);
}

/// <summary>
/// BERT's residual block after its output projection: LayerNorm(row + residual row) with the LayerNorm's weight and
/// bias (transformers' <c>BertSelfOutput</c> and <c>BertOutput</c> in eval mode, where dropout is the identity). The
/// mean and the biased variance are those of libtorch's LayerNorm; they are summed in another order, so results agree
/// to float rounding, not bit for bit (the load-time check in <see cref="RowEpilogueCheck"/> bounds the difference).
/// Written with <see cref="ISimdFloats{TSelf}"/> registers rather than TensorPrimitives: its six generic operations
/// took ~30 ms to compile on first use, on the critical path of every <c>berthost embed</c>.
/// </summary>
internal sealed unsafe class ResidualLayerNormRows(float* residual, float* weight, float* bias, int width, float epsilon) : RowEpilogue
{
    public override void Apply(Span<float> row, int r)
    {
        fixed (float* values = row)
        {
            var residualRow = residual + (long)r * width;
            if (Vector512.IsHardwareAccelerated) Normalize<Avx512Floats>(values, residualRow);
            else if (Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Fma.IsSupported) Normalize<Avx2Floats>(values, residualRow);
            else Normalize(values, residualRow);
        }
    }

    private void Normalize<TV>(float* x, float* residualRow) where TV : unmanaged, ISimdFloats<TV>
    {
        var lanes = TV.Lanes;
        var whole = width - width % lanes;
        var sum = default(TV);
        for (var i = 0; i < whole; i += lanes)
        {
            var v = TV.Add(TV.Load(x + i), TV.Load(residualRow + i));
            v.Store(x + i);
            sum = TV.Add(sum, v);
        }
        var total = sum.Sum();
        for (var i = whole; i < width; i++) total += x[i] += residualRow[i];
        var mean = total / width;
        var m = TV.Broadcast(mean);
        var squares = default(TV);
        for (var i = 0; i < whole; i += lanes)
        {
            var d = TV.Subtract(TV.Load(x + i), m);
            squares = TV.MultiplyAdd(d, d, squares);
        }
        var rstd = InverseDeviation(squares.Sum(), x, whole, mean);
        var s = TV.Broadcast(rstd);
        for (var i = 0; i < whole; i += lanes)
            TV.MultiplyAdd(TV.Multiply(TV.Subtract(TV.Load(x + i), m), s), TV.Load(weight + i), TV.Load(bias + i)).Store(x + i);
        Finish(x, whole, mean, rstd);
    }

    /// <summary>The path without AVX2.</summary>
    private void Normalize(float* x, float* residualRow)
    {
        var total = 0f;
        for (var i = 0; i < width; i++) total += x[i] += residualRow[i];
        var mean = total / width;
        Finish(x, 0, mean, InverseDeviation(0, x, 0, mean));
    }

    private float InverseDeviation(float squares, float* x, int from, float mean)
    {
        for (var i = from; i < width; i++) squares += (x[i] - mean) * (x[i] - mean);
        return 1 / MathF.Sqrt(squares / width + epsilon);
    }

    private void Finish(float* x, int from, float mean, float rstd)
    {
        for (var i = from; i < width; i++) x[i] = MathF.FusedMultiplyAdd((x[i] - mean) * rstd, weight[i], bias[i]);
    }
}

/// <summary>
/// The exact GELU, 0.5 · x · (1 + erf(x / √2)), of transformers' <c>"gelu"</c> after the feed-forward expansion. erf is
/// Abramowitz and Stegun's 7.1.26 (absolute error ≤ 1.5e-7), the approximation libtorch's vectorized CPU GELU uses:
/// 1 − erf(|x| / √2) = q = t · P(t) · exp(−x² / 2), and GELU = x − 0.5 · x · q for x ≥ 0, 0.5 · x · q below, which keeps
/// the negative tail free of the cancellation in 1 + erf (libtorch's values there are off by up to ~4e-7 absolute).
/// </summary>
internal sealed unsafe class GeluRows : RowEpilogue
{
    public static GeluRows Instance { get; } = new();

    private const float P = 0.3275911f, A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;
    private const float InverseSqrt2 = 0.70710678118654752f;

    public override void Apply(Span<float> row, int r)
    {
        fixed (float* values = row)
        {
            var i = 0;
            if (Vector512.IsHardwareAccelerated) i = Vectors<Avx512Floats>(values, row.Length);
            else if (Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Fma.IsSupported) i = Vectors<Avx2Floats>(values, row.Length);
            for (; i < row.Length; i++) values[i] = Gelu(values[i]);
        }
    }

    /// <summary>The whole registers of the row; returns where the scalar tail starts.</summary>
    private static int Vectors<TV>(float* values, int length) where TV : unmanaged, ISimdFloats<TV>
    {
        var i = 0;
        for (; i + TV.Lanes <= length; i += TV.Lanes) Gelu(TV.Load(values + i)).Store(values + i);
        return i;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Gelu<TV>(TV x) where TV : unmanaged, ISimdFloats<TV>
    {
        var z = TV.Scale(TV.Abs(x), InverseSqrt2);
        var one = TV.Broadcast(1);
        var t = TV.Divide(one, TV.MultiplyAdd(TV.Broadcast(P), z, one));
        var poly = TV.Multiply(TV.MultiplyAdd(TV.MultiplyAdd(TV.MultiplyAdd(TV.MultiplyAdd(
            TV.Broadcast(A5), t, TV.Broadcast(A4)), t, TV.Broadcast(A3)), t, TV.Broadcast(A2)), t, TV.Broadcast(A1)), t);
        // 0.5 x (1 − erf(|x| / √2)); the exponent is ≤ 0, where the AVX-512 exp is defined.
        var half = TV.Multiply(TV.Scale(x, 0.5f), TV.Multiply(poly, TV.Exp(TV.Scale(TV.Multiply(z, z), -1))));
        return TV.WhereNonNegative(x, TV.Subtract(x, half), half);
    }

    private static float Gelu(float x)
    {
        var z = MathF.Abs(x) * InverseSqrt2;
        var t = 1 / MathF.FusedMultiplyAdd(P, z, 1);
        var poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
        var half = x * 0.5f * (poly * MathF.Exp(-(z * z)));
        return x >= 0 ? x - half : half;
    }
}

/// <summary>The load-time check of the row epilogues against the libtorch operators they replace, on this machine.</summary>
internal static class RowEpilogueCheck
{
    /// <summary>What the checked epilogues finish (<c>GET /v1/body</c>'s <c>int8_row_epilogues</c>).</summary>
    public static IReadOnlyList<string> Names { get; } = ["residual_layernorm", "gelu"];

    /// <summary>
    /// How the residual LayerNorm epilogue differs from libtorch's <c>layer_norm(x + residual)</c> over rows of
    /// <paramref name="width"/>, or the GELU epilogue from libtorch's <c>gelu</c> over rows of <paramref name="intermediate"/>
    /// (null when both agree within <see cref="FastPathCheck.Float32Tolerance"/>).
    /// </summary>
    public static unsafe string? Disagreement(int width, int intermediate, double epsilon, bool fault)
    {
        using var generator = new Generator(211);
        foreach (var rows in (int[])[1, 7, 64])
        {
            using var scope = NewDisposeScope();
            // Rows with an offset and a spread, as hidden states have, and a LayerNorm that is not the identity.
            var x = randn([rows, width], generator: generator).mul_(3).add_(0.5);
            var residual = randn([rows, width], generator: generator);
            var weight = randn([width], generator: generator).mul_(0.3).add_(1);
            var bias = randn([width], generator: generator).mul_(0.1);
            var expected = nn.functional.layer_norm(x.add(residual), [width], weight, bias, epsilon);
            var actual = ApplyRows(new ResidualLayerNormRows(TensorMemory.Floats(residual), TensorMemory.Floats(weight), TensorMemory.Floats(bias),
                width, (float)epsilon), x);
            if (fault) actual.add_(1);
            var difference = FastPathCheck.RelativeDifference(actual, expected);
            if (difference > FastPathCheck.Float32Tolerance)
                return $"residual LayerNorm row epilogue disagreed with libtorch's add and layer_norm at {rows} rows of {width} (relative difference {difference:G3})";
        }
        return GeluDisagreement(intermediate, fault);
    }

    /// <summary><paramref name="epilogue"/> applied to each row of a copy of <paramref name="rows"/> [n, width], as a projection's row pass applies it.</summary>
    private static unsafe Tensor ApplyRows(RowEpilogue epilogue, Tensor rows)
    {
        var result = rows.contiguous().clone();
        var (count, width) = ((int)result.shape[0], (int)result.shape[1]);
        var values = TensorMemory.Floats(result);
        for (var r = 0; r < count; r++) epilogue.Apply(new Span<float>(values + (long)r * width, width), r);
        return result;
    }

    /// <summary>How <see cref="GeluRows"/> differs from libtorch's gelu over rows of <paramref name="width"/> (null: it agrees).</summary>
    private static unsafe string? GeluDisagreement(int width, bool fault)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(223);
        // Values from deep in the negative tail to the linear region, the vector loop's and the scalar tail's.
        var x = randn([5, width + 3], generator: generator).mul_(4);
        var expected = nn.functional.gelu(x);
        var actual = ApplyRows(GeluRows.Instance, x);
        if (fault) actual.add_(1);
        var difference = FastPathCheck.RelativeDifference(actual, expected);
        return difference > FastPathCheck.Float32Tolerance
            ? $"GELU row epilogue disagreed with libtorch's gelu over rows of {width + 3} (relative difference {difference:G3})" : null;
    }
}
