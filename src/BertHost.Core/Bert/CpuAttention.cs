using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// The attention core (softmax(QKᵀ/√d)·V per head) for float32 inference on CPUs with AVX-512, over sequences packed
/// back to back: sequence b owns rows <c>starts[b]</c> to <c>starts[b+1]</c> of the [N, heads·d] projections, and its
/// tokens attend only to each other. That is exactly what a padded pass with a key mask computes for real tokens, so
/// the padded [B, heads, T, d] layout, its scatter and gather, and the transpose after the core are not needed.
/// Why not libtorch's SDPA: its CPU flash kernel splits heads of 32 or 64 into 32-row query blocks, calls sgemm once
/// per block product and runs an online softmax that rescales the output per key block; at BERT's lengths one
/// (query block, head) fits in L2 whole, so this kernel computes the full score rows, one exact softmax, and the
/// product with V in register-blocked AVX-512 loops. Gradients are not tracked: callers use it under no_grad only.
/// </summary>
internal static unsafe class CpuAttention
{
    private const int Lanes = 16;
    private const int QueryBlock = 128;

    /// <summary>Whether this machine runs the kernel fast for a body on this device, in this dtype, with this head size.</summary>
    public static bool Supports(DeviceType device, ScalarType dtype, int headDim) =>
        Vector512.IsHardwareAccelerated && headDim % Lanes == 0 && dtype == ScalarType.Float32 && device == DeviceType.CPU;

    /// <summary>Whether <see cref="Run"/> serves projections like <paramref name="x"/> now (inference: no autograd).</summary>
    public static bool Serves(Tensor x, int headDim) => Supports(x.device_type, x.dtype, headDim) && !is_grad_enabled();

    /// <param name="q">[N, heads·d] queries (rows may be strided, the last dimension must be dense); likewise k, v.</param>
    /// <param name="starts">B+1 row offsets: sequence b is rows starts[b] .. starts[b+1]−1.</param>
    /// <returns>[N, heads·d] context, heads side by side as BERT's output projection expects them.</returns>
    public static Tensor Run(Tensor q, Tensor k, Tensor v, int[] starts, int heads, int headDim)
    {
        var hidden = heads * headDim;
        Check(q, nameof(q), hidden, starts);
        Check(k, nameof(k), hidden, starts);
        Check(v, nameof(v), hidden, starts);
        var output = empty([q.shape[0], hidden], ScalarType.Float32, q.device);
        var work = new Work(
            new Operand(q), new Operand(k), new Operand(v), new Operand(output), headDim, 1 / MathF.Sqrt(headDim));
        var items = Items(starts, heads);
        var longest = 0;
        for (var b = 0; b + 1 < starts.Length; b++) longest = Math.Max(longest, starts[b + 1] - starts[b]);
        var threads = Math.Min(get_num_threads(), items.Count);
        var next = -1;
        void Drain()
        {
            using var scratch = new Scratch(longest, headDim);
            for (int i; (i = Interlocked.Increment(ref next)) < items.Count;) work.Attend(items[i], scratch);
        }
        if (threads <= 1) Drain();
        else if (OpenMpTeam.Available) OpenMpTeam.Run(threads, _ => Drain());
        else Parallel.For(0, threads, _ => Drain());
        GC.KeepAlive(q);
        GC.KeepAlive(k);
        GC.KeepAlive(v);
        return output;
    }

    private static void Check(Tensor x, string name, int hidden, int[] starts)
    {
        if (x.dim() != 2 || x.shape[1] != hidden || x.stride(1) != 1)
            throw new ArgumentException($"{name} must be [tokens, {hidden}] with a dense last dimension, got shape [{string.Join(",", x.shape)}]");
        if (x.shape[0] != starts[^1])
            throw new ArgumentException($"{name} has {x.shape[0]} rows but the sequences cover {starts[^1]}");
    }

    /// <summary>One (sequence, head, block of up to <see cref="QueryBlock"/> queries) per item, longest work first.</summary>
    private static List<Item> Items(int[] starts, int heads)
    {
        var items = new List<Item>();
        for (var b = 0; b + 1 < starts.Length; b++)
        {
            int start = starts[b], length = starts[b + 1] - start;
            if (length < 0) throw new ArgumentException($"sequence starts must not decrease (sequence {b})");
            for (var h = 0; h < heads; h++)
                for (var first = 0; first < length; first += QueryBlock)
                    items.Add(new Item(start, length, h, first, Math.Min(QueryBlock, length - first)));
        }
        items.Sort((x, y) => (y.Rows * y.Length).CompareTo(x.Rows * x.Length));
        return items;
    }

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr tensor);

    /// <summary>A 2-D float32 tensor's first element and row stride (in floats).</summary>
    private readonly struct Operand(Tensor x)
    {
        public readonly float* Data = (float*)THSTensor_data(x.Handle);
        public readonly long RowStride = x.stride(0);
    }

    private readonly record struct Item(int Start, int Length, int Head, int FirstQuery, int Rows);

    /// <summary>Per-thread buffers: Kᵀ of one head ([d, L] padded to whole vectors) and one block of score rows.</summary>
    private sealed class Scratch : IDisposable
    {
        public readonly int Width;
        public readonly float* KeysT;
        public readonly float* Scores;

        public Scratch(int longest, int headDim)
        {
            Width = (longest + Lanes - 1) / Lanes * Lanes;
            KeysT = (float*)NativeMemory.AlignedAlloc((nuint)(headDim * Width * sizeof(float)), 64);
            Scores = (float*)NativeMemory.AlignedAlloc((nuint)(QueryBlock * Width * sizeof(float)), 64);
        }

        public void Dispose()
        {
            NativeMemory.AlignedFree(KeysT);
            NativeMemory.AlignedFree(Scores);
        }
    }

    private readonly struct Work(Operand q, Operand k, Operand v, Operand output, int headDim, float scale)
    {
        public void Attend(Item item, Scratch scratch)
        {
            var column = (long)item.Head * headDim;
            var width = (item.Length + Lanes - 1) / Lanes * Lanes;
            var keys = k.Data + item.Start * k.RowStride + column;
            var values = v.Data + item.Start * v.RowStride + column;
            var queries = q.Data + (item.Start + item.FirstQuery) * q.RowStride + column;
            var context = output.Data + (item.Start + item.FirstQuery) * output.RowStride + column;
            TransposeKeys(keys, item.Length, width, scratch.KeysT);
            Scores(queries, item.Rows, scratch.KeysT, width, scratch.Scores);
            Span<float> inverseSums = stackalloc float[QueryBlock];
            Softmax(scratch.Scores, item.Rows, item.Length, width, inverseSums);
            WeightValues(scratch.Scores, item.Rows, item.Length, width, values, inverseSums, context);
        }

        /// <summary>Kᵀ into [d, width], zero past the sequence so whole-vector score loops read defined values.</summary>
        private void TransposeKeys(float* keys, int length, int width, float* keysT)
        {
            for (var d = 0; d < headDim; d++)
            {
                var row = keysT + d * width;
                for (var j = 0; j < length; j++) row[j] = keys[j * k.RowStride + d];
                for (var j = length; j < width; j++) row[j] = 0;
            }
        }

        /// <summary>S = Q Kᵀ for a block of rows, four query rows by 64 keys per register tile.</summary>
        private void Scores(float* queries, int rows, float* keysT, int width, float* scores)
        {
            var r = 0;
            for (; r + 4 <= rows; r += 4)
            {
                float* q0 = queries + r * q.RowStride, q1 = q0 + q.RowStride, q2 = q1 + q.RowStride, q3 = q2 + q.RowStride;
                var s0 = scores + r * width;
                var j = 0;
                for (; j + 4 * Lanes <= width; j += 4 * Lanes) ScoreTile4x4(q0, q1, q2, q3, keysT + j, width, s0 + j);
                for (; j < width; j += Lanes) ScoreTile4x1(q0, q1, q2, q3, keysT + j, width, s0 + j);
            }
            for (; r < rows; r++)
            {
                var q0 = queries + r * q.RowStride;
                var s0 = scores + r * width;
                for (var j = 0; j < width; j += Lanes)
                {
                    var acc = Vector512<float>.Zero;
                    for (var d = 0; d < headDim; d++)
                        acc = Vector512.FusedMultiplyAdd(Vector512.Create(q0[d]), Vector512.Load(keysT + d * width + j), acc);
                    acc.Store(s0 + j);
                }
            }
        }

        private void ScoreTile4x4(float* q0, float* q1, float* q2, float* q3, float* keysT, int width, float* s)
        {
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
            Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
            for (var d = 0; d < headDim; d++)
            {
                var kt = keysT + d * width;
                Vector512<float> k0 = Vector512.Load(kt), k1 = Vector512.Load(kt + Lanes), k2 = Vector512.Load(kt + 2 * Lanes), k3 = Vector512.Load(kt + 3 * Lanes);
                var b = Vector512.Create(q0[d]);
                a00 = Vector512.FusedMultiplyAdd(b, k0, a00); a01 = Vector512.FusedMultiplyAdd(b, k1, a01);
                a02 = Vector512.FusedMultiplyAdd(b, k2, a02); a03 = Vector512.FusedMultiplyAdd(b, k3, a03);
                b = Vector512.Create(q1[d]);
                a10 = Vector512.FusedMultiplyAdd(b, k0, a10); a11 = Vector512.FusedMultiplyAdd(b, k1, a11);
                a12 = Vector512.FusedMultiplyAdd(b, k2, a12); a13 = Vector512.FusedMultiplyAdd(b, k3, a13);
                b = Vector512.Create(q2[d]);
                a20 = Vector512.FusedMultiplyAdd(b, k0, a20); a21 = Vector512.FusedMultiplyAdd(b, k1, a21);
                a22 = Vector512.FusedMultiplyAdd(b, k2, a22); a23 = Vector512.FusedMultiplyAdd(b, k3, a23);
                b = Vector512.Create(q3[d]);
                a30 = Vector512.FusedMultiplyAdd(b, k0, a30); a31 = Vector512.FusedMultiplyAdd(b, k1, a31);
                a32 = Vector512.FusedMultiplyAdd(b, k2, a32); a33 = Vector512.FusedMultiplyAdd(b, k3, a33);
            }
            a00.Store(s); a01.Store(s + Lanes); a02.Store(s + 2 * Lanes); a03.Store(s + 3 * Lanes);
            s += width;
            a10.Store(s); a11.Store(s + Lanes); a12.Store(s + 2 * Lanes); a13.Store(s + 3 * Lanes);
            s += width;
            a20.Store(s); a21.Store(s + Lanes); a22.Store(s + 2 * Lanes); a23.Store(s + 3 * Lanes);
            s += width;
            a30.Store(s); a31.Store(s + Lanes); a32.Store(s + 2 * Lanes); a33.Store(s + 3 * Lanes);
        }

        private void ScoreTile4x1(float* q0, float* q1, float* q2, float* q3, float* keysT, int width, float* s)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (var d = 0; d < headDim; d++)
            {
                var kt = Vector512.Load(keysT + d * width);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(q0[d]), kt, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(q1[d]), kt, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Create(q2[d]), kt, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Create(q3[d]), kt, a3);
            }
            a0.Store(s); a1.Store(s + width); a2.Store(s + 2 * width); a3.Store(s + 3 * width);
        }

        /// <summary>
        /// Each score row becomes exp(scale·(s − max)) in place (zero past the sequence); the 1 ÷ row sums are kept and
        /// applied to the (narrower) context rows instead.
        /// </summary>
        private void Softmax(float* scores, int rows, int length, int width, Span<float> inverseSums)
        {
            for (var r = 0; r < rows; r++)
            {
                var s = scores + r * width;
                for (var j = length; j < width; j++) s[j] = float.NegativeInfinity;
                var max = Vector512.Create(float.NegativeInfinity);
                for (var j = 0; j < width; j += Lanes) max = Vector512.Max(max, Vector512.Load(s + j));
                var shift = Vector512.Create(-HorizontalMax(max) * scale);
                var factor = Vector512.Create(scale);
                var sum = Vector512<float>.Zero;
                for (var j = 0; j < width; j += Lanes)
                {
                    var e = Vector512.Exp(Vector512.FusedMultiplyAdd(Vector512.Load(s + j), factor, shift));
                    e.Store(s + j);
                    sum += e;
                }
                inverseSums[r] = 1 / Vector512.Sum(sum);
            }
        }

        private static float HorizontalMax(Vector512<float> x)
        {
            var half = Vector256.Max(x.GetLower(), x.GetUpper());
            var quarter = Vector128.Max(half.GetLower(), half.GetUpper());
            return MathF.Max(MathF.Max(quarter[0], quarter[1]), MathF.Max(quarter[2], quarter[3]));
        }

        /// <summary>Context = P V ÷ row sums, 4 rows by 32 (or 16) output columns per register tile.</summary>
        private void WeightValues(float* p, int rows, int length, int width, float* values, Span<float> inverseSums, float* context)
        {
            var r = 0;
            for (; r + 8 <= rows; r += 8)
            {
                var c = 0;
                for (; c + 2 * Lanes <= headDim; c += 2 * Lanes) ValueTile8x2(p + r * width, width, length, values + c, context + r * output.RowStride + c, inverseSums.Slice(r, 8));
                for (; c < headDim; c += Lanes)
                {
                    ValueTile4x1(p + r * width, width, length, values + c, context + r * output.RowStride + c, inverseSums.Slice(r, 4));
                    ValueTile4x1(p + (r + 4) * width, width, length, values + c, context + (r + 4) * output.RowStride + c, inverseSums.Slice(r + 4, 4));
                }
            }
            for (; r + 4 <= rows; r += 4)
            {
                var c = 0;
                for (; c + 2 * Lanes <= headDim; c += 2 * Lanes) ValueTile4x2(p + r * width, width, length, values + c, context + r * output.RowStride + c, inverseSums.Slice(r, 4));
                for (; c < headDim; c += Lanes) ValueTile4x1(p + r * width, width, length, values + c, context + r * output.RowStride + c, inverseSums.Slice(r, 4));
            }
            for (; r < rows; r++)
            {
                var row = p + r * width;
                var outRow = context + r * output.RowStride;
                var inverse = Vector512.Create(inverseSums[r]);
                for (var c = 0; c < headDim; c += Lanes)
                {
                    var acc = Vector512<float>.Zero;
                    for (var j = 0; j < length; j++)
                        acc = Vector512.FusedMultiplyAdd(Vector512.Create(row[j]), Vector512.Load(values + j * v.RowStride + c), acc);
                    (acc * inverse).Store(outRow + c);
                }
            }
        }

        private void ValueTile8x2(float* p, int width, int length, float* values, float* context, Span<float> inverseSums)
        {
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector512<float> a20 = default, a21 = default, a30 = default, a31 = default;
            Vector512<float> a40 = default, a41 = default, a50 = default, a51 = default;
            Vector512<float> a60 = default, a61 = default, a70 = default, a71 = default;
            for (var j = 0; j < length; j++)
            {
                var vr = values + j * v.RowStride;
                Vector512<float> v0 = Vector512.Load(vr), v1 = Vector512.Load(vr + Lanes);
                var pj = p + j;
                var b = Vector512.Create(pj[0]);
                a00 = Vector512.FusedMultiplyAdd(b, v0, a00); a01 = Vector512.FusedMultiplyAdd(b, v1, a01);
                b = Vector512.Create(pj[width]);
                a10 = Vector512.FusedMultiplyAdd(b, v0, a10); a11 = Vector512.FusedMultiplyAdd(b, v1, a11);
                b = Vector512.Create(pj[2 * width]);
                a20 = Vector512.FusedMultiplyAdd(b, v0, a20); a21 = Vector512.FusedMultiplyAdd(b, v1, a21);
                b = Vector512.Create(pj[3 * width]);
                a30 = Vector512.FusedMultiplyAdd(b, v0, a30); a31 = Vector512.FusedMultiplyAdd(b, v1, a31);
                b = Vector512.Create(pj[4 * width]);
                a40 = Vector512.FusedMultiplyAdd(b, v0, a40); a41 = Vector512.FusedMultiplyAdd(b, v1, a41);
                b = Vector512.Create(pj[5 * width]);
                a50 = Vector512.FusedMultiplyAdd(b, v0, a50); a51 = Vector512.FusedMultiplyAdd(b, v1, a51);
                b = Vector512.Create(pj[6 * width]);
                a60 = Vector512.FusedMultiplyAdd(b, v0, a60); a61 = Vector512.FusedMultiplyAdd(b, v1, a61);
                b = Vector512.Create(pj[7 * width]);
                a70 = Vector512.FusedMultiplyAdd(b, v0, a70); a71 = Vector512.FusedMultiplyAdd(b, v1, a71);
            }
            var stride = output.RowStride;
            StorePair(a00, a01, inverseSums[0], context);
            StorePair(a10, a11, inverseSums[1], context + stride);
            StorePair(a20, a21, inverseSums[2], context + 2 * stride);
            StorePair(a30, a31, inverseSums[3], context + 3 * stride);
            StorePair(a40, a41, inverseSums[4], context + 4 * stride);
            StorePair(a50, a51, inverseSums[5], context + 5 * stride);
            StorePair(a60, a61, inverseSums[6], context + 6 * stride);
            StorePair(a70, a71, inverseSums[7], context + 7 * stride);
        }

        private static void StorePair(Vector512<float> first, Vector512<float> second, float scale, float* destination)
        {
            (first * scale).Store(destination);
            (second * scale).Store(destination + Lanes);
        }

        private void ValueTile4x2(float* p, int width, int length, float* values, float* context, Span<float> inverseSums)
        {
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector512<float> a20 = default, a21 = default, a30 = default, a31 = default;
            float* p0 = p, p1 = p + width, p2 = p + 2 * width, p3 = p + 3 * width;
            for (var j = 0; j < length; j++)
            {
                var vr = values + j * v.RowStride;
                Vector512<float> v0 = Vector512.Load(vr), v1 = Vector512.Load(vr + Lanes);
                var b = Vector512.Create(p0[j]);
                a00 = Vector512.FusedMultiplyAdd(b, v0, a00); a01 = Vector512.FusedMultiplyAdd(b, v1, a01);
                b = Vector512.Create(p1[j]);
                a10 = Vector512.FusedMultiplyAdd(b, v0, a10); a11 = Vector512.FusedMultiplyAdd(b, v1, a11);
                b = Vector512.Create(p2[j]);
                a20 = Vector512.FusedMultiplyAdd(b, v0, a20); a21 = Vector512.FusedMultiplyAdd(b, v1, a21);
                b = Vector512.Create(p3[j]);
                a30 = Vector512.FusedMultiplyAdd(b, v0, a30); a31 = Vector512.FusedMultiplyAdd(b, v1, a31);
            }
            var stride = output.RowStride;
            var i = Vector512.Create(inverseSums[0]);
            (a00 * i).Store(context); (a01 * i).Store(context + Lanes);
            i = Vector512.Create(inverseSums[1]);
            (a10 * i).Store(context + stride); (a11 * i).Store(context + stride + Lanes);
            i = Vector512.Create(inverseSums[2]);
            (a20 * i).Store(context + 2 * stride); (a21 * i).Store(context + 2 * stride + Lanes);
            i = Vector512.Create(inverseSums[3]);
            (a30 * i).Store(context + 3 * stride); (a31 * i).Store(context + 3 * stride + Lanes);
        }

        private void ValueTile4x1(float* p, int width, int length, float* values, float* context, Span<float> inverseSums)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (var j = 0; j < length; j++)
            {
                var v0 = Vector512.Load(values + j * v.RowStride);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j]), v0, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Create(p[width + j]), v0, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Create(p[2 * width + j]), v0, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Create(p[3 * width + j]), v0, a3);
            }
            var stride = output.RowStride;
            (a0 * inverseSums[0]).Store(context);
            (a1 * inverseSums[1]).Store(context + stride);
            (a2 * inverseSums[2]).Store(context + 2 * stride);
            (a3 * inverseSums[3]).Store(context + 3 * stride);
        }
    }
}
