using System.Runtime.Intrinsics;
using BertHost.Core.Backends;

namespace BertHost.Tests.Backends;

/// <summary>The attention softmax's exp against double-precision eˣ.</summary>
public class ExpFloatsTests
{
    [Fact]
    public void Exp_is_within_two_tenths_of_a_millionth_over_the_softmax_range_and_zero_below_it()
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            Console.WriteLine("skipped: no AVX-512 on this CPU (the kernel is only used where it is)");
            return;
        }
        var random = new Random(11);
        var values = Enumerable.Range(0, 4096).Select(i => i < 16 ? -i / 4f : -(float)(random.NextDouble() * 87)).ToArray();
        var worst = 0.0;
        for (var i = 0; i < values.Length; i += 16)
        {
            var e = ExpFloats.Exp(Vector512.Create(values.AsSpan(i, 16)));
            for (var j = 0; j < 16; j++)
            {
                var expected = Math.Exp(values[i + j]);
                worst = Math.Max(worst, Math.Abs(e[j] - expected) / expected);
            }
        }
        Assert.InRange(worst, 0, 2e-7);
        var edges = ExpFloats.Exp(Vector512.Create([0f, float.NegativeInfinity, -87f, -87.5f, -200f, 1f, 10f, -1e-3f, 0, 0, 0, 0, 0, 0, 0, 0]));
        Assert.Equal(1f, edges[0]);
        Assert.Equal(0f, edges[1]);
        Assert.InRange(edges[2] / Math.Exp(-87), 1 - 2e-7, 1 + 2e-7);
        Assert.Equal(0f, edges[3]);
        Assert.Equal(0f, edges[4]);
        Assert.InRange(edges[5] / Math.E, 1 - 2e-7, 1 + 2e-7);
        Assert.InRange(edges[6] / Math.Exp(10), 1 - 2e-7, 1 + 2e-7);
        Assert.InRange(edges[7] / Math.Exp(-1e-3), 1 - 2e-7, 1 + 2e-7);
    }
}
