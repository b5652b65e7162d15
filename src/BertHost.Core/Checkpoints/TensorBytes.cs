using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// Raw byte transfer between memory and TorchSharp tensors. <c>Tensor.bytes</c> works on spans (int-sized), so large
/// tensors are moved in chunks through 1-D narrowed views of the same storage.
/// </summary>
internal static class TensorBytes
{
    /// <summary>Chunk size for transfers, a multiple of every element size.</summary>
    internal const int DefaultChunk = 1 << 30;

    /// <summary>
    /// Fills a contiguous CPU tensor from a source that copies bytes into a span. <paramref name="fill"/> gets
    /// (byte offset within the tensor, destination span); it must fill the whole span.
    /// </summary>
    public static void Fill(Tensor dst, Action<long, Span<byte>> fill, int chunk = DefaultChunk)
    {
        if (!dst.is_contiguous() || dst.device_type != DeviceType.CPU)
            throw new ArgumentException("destination must be a contiguous CPU tensor", nameof(dst));
        var total = ByteCount(dst);
        if (total == 0) return;
        if (total <= chunk)
        {
            var span = dst.bytes; // a view over the tensor's own storage on CPU
            if (span.Length != total) throw new InvalidOperationException("unexpected tensor byte span length");
            fill(0, span);
            return;
        }
        using var flat = dst.reshape(-1);
        var es = (long)dst.ElementSize;
        var perChunk = chunk / es;
        for (long start = 0; start < flat.shape[0]; start += perChunk)
        {
            var n = Math.Min(perChunk, flat.shape[0] - start);
            using var part = flat.narrow(0, start, n);
            fill(start * es, part.bytes);
        }
    }

    /// <summary>Writes a contiguous CPU tensor's bytes to a stream.</summary>
    public static void WriteTo(Tensor src, Stream stream, int chunk = DefaultChunk)
    {
        if (!src.is_contiguous() || src.device_type != DeviceType.CPU)
            throw new ArgumentException("source must be a contiguous CPU tensor", nameof(src));
        var total = ByteCount(src);
        if (total == 0) return;
        if (total <= chunk)
        {
            stream.Write(src.bytes);
            return;
        }
        using var flat = src.reshape(-1);
        var es = (long)src.ElementSize;
        var perChunk = chunk / es;
        for (long start = 0; start < flat.shape[0]; start += perChunk)
        {
            using var part = flat.narrow(0, start, Math.Min(perChunk, flat.shape[0] - start));
            stream.Write(part.bytes);
        }
    }

    public static long ByteCount(Tensor t) => checked(t.numel() * t.ElementSize);
}
