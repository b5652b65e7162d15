using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BertHost.Core.Backends;

/// <summary>
/// A register of float lanes, so <see cref="CpuAttention"/>'s (and <see cref="ResidualLayerNormRows"/>'s) loops are written once for AVX-512 and AVX2: the JIT
/// compiles a generic method separately for each struct argument and inlines these one-instruction members.
/// </summary>
internal unsafe interface ISimdFloats<TSelf> where TSelf : unmanaged, ISimdFloats<TSelf>
{
    static abstract int Lanes { get; }
    static abstract TSelf Load(float* source);
    static abstract TSelf Broadcast(float value);

    /// <summary>a · b + c, fused.</summary>
    static abstract TSelf MultiplyAdd(TSelf a, TSelf b, TSelf c);

    static abstract TSelf Max(TSelf a, TSelf b);
    static abstract TSelf Add(TSelf a, TSelf b);
    static abstract TSelf Subtract(TSelf a, TSelf b);
    static abstract TSelf Multiply(TSelf a, TSelf b);
    static abstract TSelf Divide(TSelf a, TSelf b);
    static abstract TSelf Abs(TSelf a);

    /// <summary>Lane by lane, <paramref name="a"/> where <paramref name="condition"/> ≥ 0, else <paramref name="b"/>.</summary>
    static abstract TSelf WhereNonNegative(TSelf condition, TSelf a, TSelf b);
    static abstract TSelf Exp(TSelf a);
    static abstract TSelf Scale(TSelf a, float factor);

    /// <summary>The first <paramref name="count"/> lanes of <paramref name="a"/> (all for count ≥ Lanes), <paramref name="fill"/> in the others.</summary>
    static abstract TSelf KeepFirst(TSelf a, int count, float fill);
    void Store(float* destination);
    float Sum();
    float MaxLane();
}

internal readonly unsafe struct Avx512Floats(Vector512<float> value) : ISimdFloats<Avx512Floats>
{
    private readonly Vector512<float> _value = value;

    public static int Lanes => Vector512<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats Load(float* source) => new(Vector512.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats Broadcast(float value) => new(Vector512.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats MultiplyAdd(Avx512Floats a, Avx512Floats b, Avx512Floats c) => new(Vector512.FusedMultiplyAdd(a._value, b._value, c._value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats Max(Avx512Floats a, Avx512Floats b) => new(Vector512.Max(a._value, b._value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats Add(Avx512Floats a, Avx512Floats b) => new(a._value + b._value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats Subtract(Avx512Floats a, Avx512Floats b) => new(a._value - b._value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats Multiply(Avx512Floats a, Avx512Floats b) => new(a._value * b._value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats Divide(Avx512Floats a, Avx512Floats b) => new(a._value / b._value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats Abs(Avx512Floats a) => new(Vector512.Abs(a._value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats WhereNonNegative(Avx512Floats condition, Avx512Floats a, Avx512Floats b) =>
        new(Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(condition._value, Vector512<float>.Zero), a._value, b._value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats Exp(Avx512Floats a) => new(ExpFloats.Exp(a._value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats Scale(Avx512Floats a, float factor) => new(a._value * factor);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx512Floats KeepFirst(Avx512Floats a, int count, float fill) =>
        new(Vector512.ConditionalSelect(Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(count)).AsSingle(), a._value, Vector512.Create(fill)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Store(float* destination) => _value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Sum() => Vector512.Sum(_value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float MaxLane() => new Avx2Floats(Vector256.Max(_value.GetLower(), _value.GetUpper())).MaxLane();
}

internal readonly unsafe struct Avx2Floats(Vector256<float> value) : ISimdFloats<Avx2Floats>
{
    private readonly Vector256<float> _value = value;

    public static int Lanes => Vector256<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats Load(float* source) => new(Vector256.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats Broadcast(float value) => new(Vector256.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats MultiplyAdd(Avx2Floats a, Avx2Floats b, Avx2Floats c) => new(Vector256.FusedMultiplyAdd(a._value, b._value, c._value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats Max(Avx2Floats a, Avx2Floats b) => new(Vector256.Max(a._value, b._value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats Add(Avx2Floats a, Avx2Floats b) => new(a._value + b._value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats Subtract(Avx2Floats a, Avx2Floats b) => new(a._value - b._value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats Multiply(Avx2Floats a, Avx2Floats b) => new(a._value * b._value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats Divide(Avx2Floats a, Avx2Floats b) => new(a._value / b._value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats Abs(Avx2Floats a) => new(Vector256.Abs(a._value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats WhereNonNegative(Avx2Floats condition, Avx2Floats a, Avx2Floats b) =>
        new(Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(condition._value, Vector256<float>.Zero), a._value, b._value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats Exp(Avx2Floats a) => new(Vector256.Exp(a._value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats Scale(Avx2Floats a, float factor) => new(a._value * factor);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Avx2Floats KeepFirst(Avx2Floats a, int count, float fill) =>
        new(Vector256.ConditionalSelect(Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(count)).AsSingle(), a._value, Vector256.Create(fill)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Store(float* destination) => _value.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Sum() => Vector256.Sum(_value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float MaxLane()
    {
        var half = Vector128.Max(_value.GetLower(), _value.GetUpper());
        return MathF.Max(MathF.Max(half[0], half[1]), MathF.Max(half[2], half[3]));
    }
}

/// <summary>
/// eˣ for 16 floats, for the attention softmax (its arguments are ≤ 0): n = round(x·log₂e), r = x − n·ln2 in two parts,
/// a degree-6 polynomial for eʳ (Cephes' expf coefficients) and 2ⁿ applied with AVX-512's <c>vscalefps</c>. Relative
/// error ≤ 1.2e-7 over [−88, 0] (.NET's <see cref="Vector512.Exp(Vector512{float})"/>: 1.4e-7, computed in double),
/// 0.21 against 0.33 ns per value on the build machine (the attention core measured about a tenth faster with it).
/// Below −87.3 (where eˣ leaves the normal floats) and at −∞ the result is 0; above 88.7 it is not defined here.
/// </summary>
internal static class ExpFloats
{
    private const float Lowest = -87.33654f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        var clamped = Vector512.Min(Vector512.Max(x, Vector512.Create(Lowest)), Vector512.Create(88.72283f));
        var n = Vector512.Round(clamped * Vector512.Create(1.44269504088896341f));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), clamped);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1.9875691500E-4f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894E-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459E-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201E-1f));
        p = Vector512.FusedMultiplyAdd(p, r * r, r + Vector512<float>.One);
        var result = Avx512F.Scale(p, n);
        return Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(Lowest)), Vector512<float>.Zero, result);
    }
}

/// <summary>
/// A 16 × 16 block of floats transposed in AVX-512 registers: 16 row loads, three rounds of unpacks and 128-bit lane
/// shuffles, 16 row stores. The attention core's Kᵀ was a scalar loop reading keys a column at a time (2.4 µs per
/// 128 × 32 head, 4.5 % of an int8 embed process over 128-token texts); blocks take 0.18 µs.
/// </summary>
internal static unsafe class Transpose16
{
    /// <summary>dst[c · dstStride + r] = src[r · srcStride + c] for r, c in 0..15. Needs AVX-512F.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Block(float* src, long srcStride, float* dst, long dstStride)
    {
        // Four rows at a time, interleaved twice: lane L of u0..u3 holds columns 4L..4L+3 of those rows, one per register.
        var (u0, u1, u2, u3) = FourRows(src, srcStride);
        var (u4, u5, u6, u7) = FourRows(src + 4 * srcStride, srcStride);
        var (u8, u9, u10, u11) = FourRows(src + 8 * srcStride, srcStride);
        var (u12, u13, u14, u15) = FourRows(src + 12 * srcStride, srcStride);
        // Then 128-bit lanes regrouped: each output row takes one lane from each group of four rows.
        FourColumns(u0, u4, u8, u12, dst, dstStride);
        FourColumns(u1, u5, u9, u13, dst + dstStride, dstStride);
        FourColumns(u2, u6, u10, u14, dst + 2 * dstStride, dstStride);
        FourColumns(u3, u7, u11, u15, dst + 3 * dstStride, dstStride);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) FourRows(float* src, long stride)
    {
        Vector512<float> a = Vector512.Load(src), b = Vector512.Load(src + stride), c = Vector512.Load(src + 2 * stride), d = Vector512.Load(src + 3 * stride);
        var ab0 = Avx512F.UnpackLow(a, b).AsDouble();
        var ab1 = Avx512F.UnpackHigh(a, b).AsDouble();
        var cd0 = Avx512F.UnpackLow(c, d).AsDouble();
        var cd1 = Avx512F.UnpackHigh(c, d).AsDouble();
        return (Avx512F.UnpackLow(ab0, cd0).AsSingle(), Avx512F.UnpackHigh(ab0, cd0).AsSingle(),
            Avx512F.UnpackLow(ab1, cd1).AsSingle(), Avx512F.UnpackHigh(ab1, cd1).AsSingle());
    }

    /// <summary>Output rows c, c + 4, c + 8 and c + 12 (dst points at row c) from the c-th register of each group of four rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FourColumns(Vector512<float> rows0, Vector512<float> rows4, Vector512<float> rows8, Vector512<float> rows12, float* dst, long stride)
    {
        var even = Avx512F.Shuffle4x128(rows0, rows4, 0x88);
        var odd = Avx512F.Shuffle4x128(rows0, rows4, 0xDD);
        var evenHigh = Avx512F.Shuffle4x128(rows8, rows12, 0x88);
        var oddHigh = Avx512F.Shuffle4x128(rows8, rows12, 0xDD);
        Avx512F.Shuffle4x128(even, evenHigh, 0x88).Store(dst);
        Avx512F.Shuffle4x128(odd, oddHigh, 0x88).Store(dst + 4 * stride);
        Avx512F.Shuffle4x128(even, evenHigh, 0xDD).Store(dst + 8 * stride);
        Avx512F.Shuffle4x128(odd, oddHigh, 0xDD).Store(dst + 12 * stride);
    }
}
