using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// The attention core (softmax(QKᵀ/√d)·V per head) for float32 inference on CPUs with AVX-512 or AVX2, over sequences packed
/// back to back: sequence b owns rows <c>starts[b]</c> to <c>starts[b+1]</c> of the [N, heads·d] projections, and its
/// tokens attend only to each other. That is exactly what a padded pass with a key mask computes for real tokens, so
/// the padded [B, heads, T, d] layout, its scatter and gather, and the transpose after the core are not needed.
/// Why not libtorch's SDPA: its CPU flash kernel splits heads of 32 or 64 into 32-row query blocks, calls sgemm once
/// per block product and runs an online softmax that rescales the output per key block; at BERT's lengths one
/// (query block, head) fits in L2 whole, so this kernel computes the full score rows, one exact softmax, and the
/// product with V in register-blocked loops (<see cref="Kernel{TV}"/>, compiled for 16- or 8-float registers).
/// It has no backward: <see cref="Serves"/> says when a pass may use it.
/// </summary>
internal static unsafe class CpuAttention
{
    /// <summary>Score rows and Kᵀ are padded to a multiple of this many keys (whole registers of either width).</summary>
    private const int KeyPad = 16;
    private const int QueryBlock = 128;

    /// <summary>
    /// The instruction set the kernel runs here for this head size: <c>cpu_avx512</c> (16-float registers; the head
    /// size a multiple of 16), <c>cpu_avx2</c> (8-float registers with FMA; a multiple of 8), or null where neither
    /// is accelerated.
    /// </summary>
    public static string? InstructionSet(int headDim) =>
        Vector512.IsHardwareAccelerated && headDim % Avx512Floats.Lanes == 0 ? "cpu_avx512"
        : Vector256.IsHardwareAccelerated && Fma.IsSupported && headDim % Avx2Floats.Lanes == 0 ? "cpu_avx2"
        : null;

    /// <summary>Whether this machine runs the kernel fast for a body on this device, in this dtype, with this head size.</summary>
    public static bool Supports(DeviceType device, ScalarType dtype, int headDim) =>
        InstructionSet(headDim) is not null && dtype == ScalarType.Float32 && device == DeviceType.CPU;

    /// <summary>
    /// Whether <see cref="Run"/> serves these projections: the kernel has no backward, so none may need a gradient (a
    /// frozen body's passes qualify with autograd on, which keeps a frozen body's outputs the same in and out of
    /// no_grad).
    /// </summary>
    public static bool Serves(Tensor q, Tensor k, Tensor v, int headDim) =>
        Supports(q.device_type, q.dtype, headDim) && !(is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad));

    /// <summary>Attention within each of the sequences packed back to back in the rows of q, k and v.</summary>
    /// <param name="q">[N, heads·d] queries (rows may be strided, the last dimension must be dense); likewise k, v.</param>
    /// <param name="starts">B+1 row offsets: sequence b is rows starts[b] .. starts[b+1]−1.</param>
    /// <param name="instructionSet">Forces <c>cpu_avx512</c> or <c>cpu_avx2</c> code (tests; .NET emulates registers the
    /// CPU lacks); null picks <see cref="InstructionSet"/>, or 8-float registers where none is accelerated.</param>
    /// <returns>[N, heads·d] context, heads side by side as BERT's output projection expects them.</returns>
    public static Tensor Run(Tensor q, Tensor k, Tensor v, int[] starts, int heads, int headDim, string? instructionSet = null)
    {
        var segments = new Segment[starts.Length - 1];
        for (var b = 0; b < segments.Length; b++)
        {
            var length = starts[b + 1] - starts[b];
            if (length < 0) throw new ArgumentException($"sequence starts must not decrease (sequence {b})");
            segments[b] = new Segment(starts[b], length, starts[b], length);
        }
        return Attend(q, k, v, starts[^1], segments, heads, headDim, instructionSet);
    }

    /// <summary>
    /// Attention over a padded batch whose key mask is a prefix per row (what <see cref="PrefixKeyLengths"/> finds):
    /// every query of sequence b — padding included, as in a masked padded pass — attends to its first
    /// <paramref name="keyLengths"/>[b] keys.
    /// </summary>
    /// <param name="q">[B·T, heads·d], sequence b in rows b·T .. b·T+T−1; likewise k, v.</param>
    public static Tensor RunPadded(Tensor q, Tensor k, Tensor v, int sequenceLength, int[] keyLengths, int heads, int headDim, string? instructionSet = null)
    {
        var segments = new Segment[keyLengths.Length];
        for (var b = 0; b < segments.Length; b++)
        {
            if (keyLengths[b] < 1 || keyLengths[b] > sequenceLength)
                throw new ArgumentException($"key length {keyLengths[b]} of sequence {b} is outside 1..{sequenceLength}");
            segments[b] = new Segment(b * sequenceLength, sequenceLength, b * sequenceLength, keyLengths[b]);
        }
        return Attend(q, k, v, keyLengths.Length * sequenceLength, segments, heads, headDim, instructionSet);
    }

    /// <summary>
    /// The number of attended keys of each row of a [B,1,1,T] additive float32 mask that keeps a prefix of every row (0
    /// on the first keys, a large negative number on the rest) — the masks tokenised batches get; null for any other
    /// mask (holes, an empty row, another shape or dtype), which the caller leaves to SDPA.
    /// </summary>
    public static int[]? PrefixKeyLengths(Tensor maskBias)
    {
        if (maskBias.dim() != 4 || maskBias.shape[1] != 1 || maskBias.shape[2] != 1 || maskBias.dtype != ScalarType.Float32 ||
            maskBias.device_type != DeviceType.CPU)
            return null;
        int rows = (int)maskBias.shape[0], keys = (int)maskBias.shape[3];
        using var dense = maskBias.reshape(rows, keys).contiguous();
        var bias = dense.data<float>().ToArray();
        var lengths = new int[rows];
        for (var b = 0; b < rows; b++)
        {
            var row = bias.AsSpan(b * keys, keys);
            var length = row.IndexOfAnyExcept(0f);
            if (length < 0) length = keys;
            if (length == 0) return null;
            foreach (var masked in row[length..])
                if (!(masked <= MaskedBias)) return null;
            lengths[b] = length;
        }
        return lengths;
    }

    /// <summary>Additive mask values at or below this count as "not attended" (BERT uses the dtype's minimum).</summary>
    private const float MaskedBias = -1e30f;

    private static Tensor Attend(Tensor q, Tensor k, Tensor v, long rows, Segment[] segments, int heads, int headDim, string? instructionSet)
    {
        var hidden = heads * headDim;
        Check(q, nameof(q), hidden, rows);
        Check(k, nameof(k), hidden, rows);
        Check(v, nameof(v), hidden, rows);
        var wide = (instructionSet ?? InstructionSet(headDim)) == "cpu_avx512";
        var lanes = wide ? Avx512Floats.Lanes : Avx2Floats.Lanes;
        if (headDim % lanes != 0)
            throw new ArgumentException($"head size {headDim} is not a multiple of {lanes} floats");
        var output = empty([q.shape[0], hidden], ScalarType.Float32, q.device);
        var operands = new Operands(new Operand(q), new Operand(k), new Operand(v), new Operand(output), headDim);
        var items = Items(segments, heads);
        var longest = segments.Length == 0 ? 0 : segments.Max(s => s.Keys);
        var threads = Math.Min(get_num_threads(), items.Count);
        var next = -1;
        void DrainWith<TV>() where TV : unmanaged, ISimdFloats<TV>
        {
            var kernel = new Kernel<TV>(operands);
            using var scratch = new Scratch(longest, headDim);
            for (int i; (i = Interlocked.Increment(ref next)) < items.Count;) kernel.Attend(items[i], scratch);
        }
        Action drain = wide ? DrainWith<Avx512Floats> : DrainWith<Avx2Floats>;
        if (threads <= 1) drain();
        else if (OpenMpTeam.Available) OpenMpTeam.Run(threads, _ => drain());
        else Parallel.For(0, threads, _ => drain());
        GC.KeepAlive(q);
        GC.KeepAlive(k);
        GC.KeepAlive(v);
        return output;
    }

    private static void Check(Tensor x, string name, int hidden, long rows)
    {
        if (x.dim() != 2 || x.shape[1] != hidden || x.stride(1) != 1)
            throw new ArgumentException($"{name} must be [tokens, {hidden}] with a dense last dimension, got shape [{string.Join(",", x.shape)}]");
        if (x.shape[0] != rows)
            throw new ArgumentException($"{name} has {x.shape[0]} rows but the sequences cover {rows}");
    }

    /// <summary>One (sequence, head, block of up to <see cref="QueryBlock"/> queries) per item, longest work first.</summary>
    private static List<Item> Items(Segment[] segments, int heads)
    {
        var items = new List<Item>();
        foreach (var s in segments)
            for (var h = 0; h < heads; h++)
                for (var first = 0; first < s.Queries; first += QueryBlock)
                    items.Add(new Item(s.QueryStart + first, Math.Min(QueryBlock, s.Queries - first), s.KeyStart, s.Keys, h));
        items.Sort((x, y) => (y.Rows * y.Keys).CompareTo(x.Rows * x.Keys));
        return items;
    }

    /// <summary>A 2-D float32 tensor's first element and row stride (in floats).</summary>
    private readonly struct Operand(Tensor x)
    {
        public readonly float* Data = TensorMemory.Floats(x);
        public readonly long RowStride = x.stride(0);
    }

    /// <summary>Queries rows QueryStart.. attend to keys (and values) rows KeyStart.. of one sequence.</summary>
    private readonly record struct Segment(int QueryStart, int Queries, int KeyStart, int Keys);

    private readonly record struct Item(int QueryStart, int Rows, int KeyStart, int Keys, int Head);

    private readonly record struct Operands(Operand Q, Operand K, Operand V, Operand Output, int HeadDim);

    private static int Padded(int keys) => (keys + KeyPad - 1) / KeyPad * KeyPad;

    /// <summary>Per-thread buffers: Kᵀ of one head ([d, L] padded to whole vectors) and one block of score rows.</summary>
    private sealed class Scratch : IDisposable
    {
        public readonly float* KeysT;
        public readonly float* Scores;

        public Scratch(int longest, int headDim)
        {
            var width = Padded(longest);
            KeysT = (float*)NativeMemory.AlignedAlloc((nuint)(headDim * width * sizeof(float)), 64);
            Scores = (float*)NativeMemory.AlignedAlloc((nuint)(QueryBlock * width * sizeof(float)), 64);
        }

        public void Dispose()
        {
            NativeMemory.AlignedFree(KeysT);
            NativeMemory.AlignedFree(Scores);
        }
    }

    /// <summary>
    /// One item's attention with <typeparamref name="TV"/> registers. Tiles: Q·Kᵀ 4 query rows by 4 registers of keys
    /// (AVX-512: 16 accumulators of its 32 registers) or by 2 (AVX2: 8 of 16); P·V 4 rows by 2 registers of output
    /// columns (an 8-row tile on AVX-512 measured ~5 % faster on the core, under 1 % of a pass: not kept). Tails take
    /// narrower tiles and single rows.
    /// </summary>
    private readonly struct Kernel<TV>(Operands operands) where TV : unmanaged, ISimdFloats<TV>
    {
        private static readonly bool Wide = TV.Lanes == 16;

        private readonly Operand _q = operands.Q, _k = operands.K, _v = operands.V, _output = operands.Output;
        private readonly int _headDim = operands.HeadDim;
        private readonly float _scale = 1 / MathF.Sqrt(operands.HeadDim);

        public void Attend(Item item, Scratch scratch)
        {
            var column = (long)item.Head * _headDim;
            var width = Padded(item.Keys);
            var keys = _k.Data + item.KeyStart * _k.RowStride + column;
            var values = _v.Data + item.KeyStart * _v.RowStride + column;
            var queries = _q.Data + item.QueryStart * _q.RowStride + column;
            var context = _output.Data + item.QueryStart * _output.RowStride + column;
            TransposeKeys(keys, item.Keys, width, scratch.KeysT);
            Scores(queries, item.Rows, scratch.KeysT, width, scratch.Scores);
            Span<float> inverseSums = stackalloc float[QueryBlock];
            Softmax(scratch.Scores, item.Rows, item.Keys, width, inverseSums);
            WeightValues(scratch.Scores, item.Rows, item.Keys, width, values, inverseSums, context);
        }

        /// <summary>
        /// Kᵀ into [d, width], zero past the sequence so whole-register score loops read defined values. With AVX-512,
        /// blocks of 16 keys are transposed in registers (<see cref="Transpose16"/>), the last one zero-padded (width is
        /// a whole number of blocks); with AVX2, key by key.
        /// </summary>
        private void TransposeKeys(float* keys, int length, int width, float* keysT)
        {
            if (Wide)
            {
                var blocked = 0;
                for (; blocked + 16 <= length; blocked += 16)
                    for (var d = 0; d < _headDim; d += 16)
                        Transpose16.Block(keys + blocked * _k.RowStride + d, _k.RowStride, keysT + d * width + blocked, width);
                var rest = length - blocked;
                if (rest == 0) return;
                // Most sentences are shorter than one block; key by key they were head-size × 16 scalar loads and
                // stores per head.
                var block = stackalloc float[16 * 16];
                new Span<float>(block + rest * 16, (16 - rest) * 16).Clear();
                for (var d = 0; d < _headDim; d += 16)
                {
                    for (var j = 0; j < rest; j++) Vector512.Load(keys + (blocked + j) * _k.RowStride + d).Store(block + j * 16);
                    Transpose16.Block(block, 16, keysT + d * width + blocked, width);
                }
                return;
            }
            for (var d = 0; d < _headDim; d++)
            {
                var row = keysT + d * width;
                for (var j = 0; j < length; j++) row[j] = keys[j * _k.RowStride + d];
                for (var j = length; j < width; j++) row[j] = 0;
            }
        }

        /// <summary>S = Q Kᵀ for a block of query rows.</summary>
        private void Scores(float* queries, int rows, float* keysT, int width, float* scores)
        {
            var lanes = TV.Lanes;
            var tile = (Wide ? 4 : 2) * lanes;
            var r = 0;
            for (; r + 4 <= rows; r += 4)
            {
                var q0 = queries + r * _q.RowStride;
                var s0 = scores + r * width;
                var j = 0;
                for (; j + tile <= width; j += tile)
                {
                    if (Wide) ScoreTile4x4(q0, keysT + j, width, s0 + j);
                    else ScoreTile4x2(q0, keysT + j, width, s0 + j);
                }
                for (; j < width; j += lanes) ScoreTile4x1(q0, keysT + j, width, s0 + j);
            }
            for (; r < rows; r++)
            {
                var q0 = queries + r * _q.RowStride;
                var s0 = scores + r * width;
                for (var j = 0; j < width; j += lanes)
                {
                    var acc = default(TV);
                    for (var d = 0; d < _headDim; d++) acc = TV.MultiplyAdd(TV.Broadcast(q0[d]), TV.Load(keysT + d * width + j), acc);
                    acc.Store(s0 + j);
                }
            }
        }

        private void ScoreTile4x4(float* q0, float* keysT, int width, float* s)
        {
            var lanes = TV.Lanes;
            float* q1 = q0 + _q.RowStride, q2 = q1 + _q.RowStride, q3 = q2 + _q.RowStride;
            TV a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
            TV a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
            for (var d = 0; d < _headDim; d++)
            {
                var kt = keysT + d * width;
                TV k0 = TV.Load(kt), k1 = TV.Load(kt + lanes), k2 = TV.Load(kt + 2 * lanes), k3 = TV.Load(kt + 3 * lanes);
                var b = TV.Broadcast(q0[d]);
                a00 = TV.MultiplyAdd(b, k0, a00); a01 = TV.MultiplyAdd(b, k1, a01); a02 = TV.MultiplyAdd(b, k2, a02); a03 = TV.MultiplyAdd(b, k3, a03);
                b = TV.Broadcast(q1[d]);
                a10 = TV.MultiplyAdd(b, k0, a10); a11 = TV.MultiplyAdd(b, k1, a11); a12 = TV.MultiplyAdd(b, k2, a12); a13 = TV.MultiplyAdd(b, k3, a13);
                b = TV.Broadcast(q2[d]);
                a20 = TV.MultiplyAdd(b, k0, a20); a21 = TV.MultiplyAdd(b, k1, a21); a22 = TV.MultiplyAdd(b, k2, a22); a23 = TV.MultiplyAdd(b, k3, a23);
                b = TV.Broadcast(q3[d]);
                a30 = TV.MultiplyAdd(b, k0, a30); a31 = TV.MultiplyAdd(b, k1, a31); a32 = TV.MultiplyAdd(b, k2, a32); a33 = TV.MultiplyAdd(b, k3, a33);
            }
            StoreRow(a00, a01, a02, a03, s);
            StoreRow(a10, a11, a12, a13, s + width);
            StoreRow(a20, a21, a22, a23, s + 2 * width);
            StoreRow(a30, a31, a32, a33, s + 3 * width);
        }

        private static void StoreRow(TV x0, TV x1, TV x2, TV x3, float* destination)
        {
            var lanes = TV.Lanes;
            x0.Store(destination);
            x1.Store(destination + lanes);
            x2.Store(destination + 2 * lanes);
            x3.Store(destination + 3 * lanes);
        }

        private void ScoreTile4x2(float* q0, float* keysT, int width, float* s)
        {
            var lanes = TV.Lanes;
            float* q1 = q0 + _q.RowStride, q2 = q1 + _q.RowStride, q3 = q2 + _q.RowStride;
            TV a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
            for (var d = 0; d < _headDim; d++)
            {
                var kt = keysT + d * width;
                TV k0 = TV.Load(kt), k1 = TV.Load(kt + lanes);
                var b = TV.Broadcast(q0[d]);
                a00 = TV.MultiplyAdd(b, k0, a00); a01 = TV.MultiplyAdd(b, k1, a01);
                b = TV.Broadcast(q1[d]);
                a10 = TV.MultiplyAdd(b, k0, a10); a11 = TV.MultiplyAdd(b, k1, a11);
                b = TV.Broadcast(q2[d]);
                a20 = TV.MultiplyAdd(b, k0, a20); a21 = TV.MultiplyAdd(b, k1, a21);
                b = TV.Broadcast(q3[d]);
                a30 = TV.MultiplyAdd(b, k0, a30); a31 = TV.MultiplyAdd(b, k1, a31);
            }
            a00.Store(s); a01.Store(s + lanes);
            a10.Store(s + width); a11.Store(s + width + lanes);
            a20.Store(s + 2 * width); a21.Store(s + 2 * width + lanes);
            a30.Store(s + 3 * width); a31.Store(s + 3 * width + lanes);
        }

        private void ScoreTile4x1(float* q0, float* keysT, int width, float* s)
        {
            float* q1 = q0 + _q.RowStride, q2 = q1 + _q.RowStride, q3 = q2 + _q.RowStride;
            TV a0 = default, a1 = default, a2 = default, a3 = default;
            for (var d = 0; d < _headDim; d++)
            {
                var kt = TV.Load(keysT + d * width);
                a0 = TV.MultiplyAdd(TV.Broadcast(q0[d]), kt, a0);
                a1 = TV.MultiplyAdd(TV.Broadcast(q1[d]), kt, a1);
                a2 = TV.MultiplyAdd(TV.Broadcast(q2[d]), kt, a2);
                a3 = TV.MultiplyAdd(TV.Broadcast(q3[d]), kt, a3);
            }
            a0.Store(s); a1.Store(s + width); a2.Store(s + 2 * width); a3.Store(s + 3 * width);
        }

        /// <summary>
        /// Each score row becomes exp(scale·(s − max)) in place (zero past the sequence); the 1 ÷ row sums are kept and
        /// applied to the (narrower) context rows instead.
        /// </summary>
        /// <remarks>
        /// Columns past the sequence are masked in registers (−∞, so eˣ is 0). Writing −∞ into them first, element by
        /// element, made the next whole-register load of the same row wait for those stores: on ~13-token sentences,
        /// one register per row, that stall was most of the softmax.
        /// </remarks>
        private void Softmax(float* scores, int rows, int length, int width, Span<float> inverseSums)
        {
            var lanes = TV.Lanes;
            var inside = length / lanes * lanes;
            var factor = TV.Broadcast(_scale);
            for (var r = 0; r < rows; r++)
            {
                var s = scores + r * width;
                var max = TV.Broadcast(float.NegativeInfinity);
                for (var j = 0; j < inside; j += lanes) max = TV.Max(max, TV.Load(s + j));
                for (var j = inside; j < width; j += lanes) max = TV.Max(max, TV.KeepFirst(TV.Load(s + j), length - j, float.NegativeInfinity));
                var shift = TV.Broadcast(-max.MaxLane() * _scale);
                var sum = default(TV);
                for (var j = 0; j < inside; j += lanes)
                {
                    var e = TV.Exp(TV.MultiplyAdd(TV.Load(s + j), factor, shift));
                    e.Store(s + j);
                    sum = TV.Add(sum, e);
                }
                for (var j = inside; j < width; j += lanes)
                {
                    var e = TV.Exp(TV.MultiplyAdd(TV.KeepFirst(TV.Load(s + j), length - j, float.NegativeInfinity), factor, shift));
                    e.Store(s + j);
                    sum = TV.Add(sum, e);
                }
                inverseSums[r] = 1 / sum.Sum();
            }
        }

        /// <summary>Context = P V ÷ row sums, two registers of output columns per tile, then one.</summary>
        private void WeightValues(float* p, int rows, int length, int width, float* values, Span<float> inverseSums, float* context)
        {
            var lanes = TV.Lanes;
            var stride = _output.RowStride;
            var r = 0;
            for (; r + 4 <= rows; r += 4)
            {
                var c = 0;
                for (; c + 2 * lanes <= _headDim; c += 2 * lanes) ValueTile4x2(p + r * width, width, length, values + c, context + r * stride + c, inverseSums.Slice(r, 4));
                for (; c < _headDim; c += lanes) ValueTile4x1(p + r * width, width, length, values + c, context + r * stride + c, inverseSums.Slice(r, 4));
            }
            for (; r < rows; r++)
            {
                var row = p + r * width;
                for (var c = 0; c < _headDim; c += lanes)
                {
                    var acc = default(TV);
                    for (var j = 0; j < length; j++) acc = TV.MultiplyAdd(TV.Broadcast(row[j]), TV.Load(values + j * _v.RowStride + c), acc);
                    TV.Scale(acc, inverseSums[r]).Store(context + r * stride + c);
                }
            }
        }

        private void ValueTile4x2(float* p, int width, int length, float* values, float* context, Span<float> inverseSums)
        {
            var lanes = TV.Lanes;
            TV a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
            for (var j = 0; j < length; j++)
            {
                var vr = values + j * _v.RowStride;
                TV v0 = TV.Load(vr), v1 = TV.Load(vr + lanes);
                var pj = p + j;
                var b = TV.Broadcast(pj[0]);
                a00 = TV.MultiplyAdd(b, v0, a00); a01 = TV.MultiplyAdd(b, v1, a01);
                b = TV.Broadcast(pj[width]);
                a10 = TV.MultiplyAdd(b, v0, a10); a11 = TV.MultiplyAdd(b, v1, a11);
                b = TV.Broadcast(pj[2 * width]);
                a20 = TV.MultiplyAdd(b, v0, a20); a21 = TV.MultiplyAdd(b, v1, a21);
                b = TV.Broadcast(pj[3 * width]);
                a30 = TV.MultiplyAdd(b, v0, a30); a31 = TV.MultiplyAdd(b, v1, a31);
            }
            var stride = _output.RowStride;
            StorePair(a00, a01, inverseSums[0], context);
            StorePair(a10, a11, inverseSums[1], context + stride);
            StorePair(a20, a21, inverseSums[2], context + 2 * stride);
            StorePair(a30, a31, inverseSums[3], context + 3 * stride);
        }

        private void ValueTile4x1(float* p, int width, int length, float* values, float* context, Span<float> inverseSums)
        {
            TV a0 = default, a1 = default, a2 = default, a3 = default;
            for (var j = 0; j < length; j++)
            {
                var v0 = TV.Load(values + j * _v.RowStride);
                a0 = TV.MultiplyAdd(TV.Broadcast(p[j]), v0, a0);
                a1 = TV.MultiplyAdd(TV.Broadcast(p[width + j]), v0, a1);
                a2 = TV.MultiplyAdd(TV.Broadcast(p[2 * width + j]), v0, a2);
                a3 = TV.MultiplyAdd(TV.Broadcast(p[3 * width + j]), v0, a3);
            }
            var stride = _output.RowStride;
            TV.Scale(a0, inverseSums[0]).Store(context);
            TV.Scale(a1, inverseSums[1]).Store(context + stride);
            TV.Scale(a2, inverseSums[2]).Store(context + 2 * stride);
            TV.Scale(a3, inverseSums[3]).Store(context + 3 * stride);
        }

        private static void StorePair(TV first, TV second, float scale, float* destination)
        {
            TV.Scale(first, scale).Store(destination);
            TV.Scale(second, scale).Store(destination + TV.Lanes);
        }
    }
}
