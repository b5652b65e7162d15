using BertHost.Core.Lora;
using static TorchSharp.torch;

namespace BertHost.Tests.Lora;

/// <summary>The CPU row kernel of a LoRA update against libtorch's two GEMMs on the same rows.</summary>
public sealed class LowRankRowsTests
{
    [Theory]
    [InlineData(0, 7)]      // a few rows: one thread
    [InlineData(10, 290)]   // several 64-row chunks: split over the OpenMP team where it has more than one thread
    public void Adds_scale_times_x_A_B_to_its_rows_only(int first, int end)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(11);
        var x = randn([300, 48], generator: generator);
        var y = randn([300, 40], generator: generator);
        var a = randn([4, 48], generator: generator);
        var b = randn([40, 4], generator: generator);
        var expected = y.clone();
        expected.narrow(0, first, end - first).add_(x.narrow(0, first, end - first).matmul(a.t()).matmul(b.t()).mul(0.5));

        Assert.True(LowRankRows.Serves(x, y, [new LoraPair(new TorchSharp.Modules.Parameter(a.alias(), false), new TorchSharp.Modules.Parameter(b.alias(), false))]));
        LowRankRows.Add(x, y, a, b, 0.5f, first, end);

        Assert.True(y.allclose(expected, rtol: 1e-5, atol: 1e-5), $"max |Δ| {(y - expected).abs().max().item<float>()}");
    }
}
