using System.Runtime.Intrinsics;
using BertHost.Core.Backends;

namespace BertHost.Tests.Backends;

/// <summary>The attention core's 16 × 16 register transpose against the definition, between strided rows.</summary>
public class Transpose16Tests
{
    [Fact]
    public unsafe void A_block_lands_transposed_and_nothing_around_it_is_written()
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            Console.WriteLine("skipped: no AVX-512 on this CPU (the block transpose is only used where it is)");
            return;
        }
        const int srcStride = 37, dstStride = 21;
        var random = new Random(5);
        var source = Enumerable.Range(0, 16 * srcStride).Select(_ => (float)random.NextDouble()).ToArray();
        var target = Enumerable.Repeat(-1f, 3 + 16 * dstStride).ToArray();
        fixed (float* src = source)
        fixed (float* dst = target)
            Transpose16.Block(src + 2, srcStride, dst + 3, dstStride);
        for (var i = 0; i < target.Length; i++)
        {
            var (column, row) = Math.DivRem(i - 3, dstStride);
            var inside = i >= 3 && row < 16;
            Assert.Equal(inside ? source[row * srcStride + 2 + column] : -1f, target[i]);
        }
    }
}
