using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// An adapter's low-rank update added to a range of rows on the CPU, row by row: y[i] += scale · (x[i]·Aᵀ)·Bᵀ, with
/// the r dot products and the r scaled row additions vectorised (<see cref="System.Numerics.Tensors.TensorPrimitives"/>),
/// ranges of more than 64 rows split over libtorch's OpenMP team (<see cref="OpenMpTeam"/>). At serving sizes
/// (tens to hundreds of rows per adapter, r = 8) libtorch's two GEMMs per adapter cost more in operator calls and
/// threading than in arithmetic: 8 adapters on MiniLM made the body pass 1.25× slower that way; stacking the
/// adapters into two GEMMs instead multiplied every row by every adapter. Inference only (no autograd); the
/// libtorch path (<c>LoraPass.AddUpdates</c>) keeps training, GPUs and other dtypes. A body turns it on only where its
/// load-time check (<see cref="LowRankRowsCheck"/>) agrees with that path (<see cref="Bert.BertKernels.LowRankRows"/>).
/// </summary>
internal static class LowRankRows
{
    /// <summary>
    /// Whether <see cref="Add"/> serves these tensors: float32, CPU, 2-D, no gradient; every A and B contiguous, x and y
    /// with dense rows that may be strided (a column view of a stacked projection).
    /// </summary>
    public static bool Serves(Tensor x, Tensor y, IEnumerable<Tensor> weights) =>
        Plain(x) && Plain(y) && weights.All(w => Plain(w) && w.is_contiguous());

    private static bool Plain(Tensor t) =>
        t.device_type == TorchSharp.DeviceType.CPU && t.dtype == ScalarType.Float32 && t.dim() == 2 && t.stride(1) == 1 &&
        !(is_grad_enabled() && t.requires_grad);

    /// <summary>Where this machine computes float32 on the CPU, the kernel may serve (the load-time check decides).</summary>
    public static bool Supports(TorchSharp.DeviceType device, ScalarType dtype) => device == TorchSharp.DeviceType.CPU && dtype == ScalarType.Float32;

    /// <summary>Rows per work item when a range is split over libtorch's OpenMP team.</summary>
    private const int Chunk = 64;

    /// <summary>y[rows first..end) += scale · x·Aᵀ·Bᵀ, for x [N, in], y [N, out], A [r, in], B [out, r].</summary>
    public static unsafe void Add(Tensor x, Tensor y, Tensor a, Tensor b, float scale, int first, int end)
    {
        int inputs = (int)x.shape[1], outputs = (int)y.shape[1], rank = (int)a.shape[0];
        long xStride = x.stride(0), yStride = y.stride(0);
        var bw = MemoryMarshal.Cast<byte, float>(b.bytes);
        // Bᵀ, so that each of the r terms adds a whole contiguous row.
        var bt = new float[rank * outputs];
        for (var o = 0; o < outputs; o++)
            for (var j = 0; j < rank; j++)
                bt[j * outputs + o] = bw[o * rank + j];
        // Pointers, not spans: the team's threads make their own spans.
        float* xp = TensorMemory.Floats(x), yp = TensorMemory.Floats(y), ap = TensorMemory.Floats(a);
        void Rows(int from, int to)
        {
            var aw = new ReadOnlySpan<float>(ap, rank * inputs);
            Span<float> low = stackalloc float[rank];
            for (var i = from; i < to; i++)
            {
                var row = new ReadOnlySpan<float>(xp + i * xStride, inputs);
                for (var j = 0; j < rank; j++) low[j] = scale * TensorPrimitives.Dot(row, aw.Slice(j * inputs, inputs));
                var target = new Span<float>(yp + i * yStride, outputs);
                for (var j = 0; j < rank; j++) TensorPrimitives.MultiplyAdd(bt.AsSpan(j * outputs, outputs), low[j], target, target);
            }
        }
        OpenMpTeam.ForRows(first, end, Chunk, Rows);
        GC.KeepAlive(x);
        GC.KeepAlive(y);
        GC.KeepAlive(a);
    }
}
