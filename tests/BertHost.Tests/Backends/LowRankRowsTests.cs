using BertHost.Core.Backends;
using BertHost.Core.Body;
using BertHost.Core.Lora;
using BertHost.Core.Serving;
using BertHost.Tests.Bert;
using BertHost.Tests.Lora;
using BertHost.Tests.Support;
using BertHost.Tests.Training;
using static TorchSharp.torch;

namespace BertHost.Tests.Backends;

/// <summary>
/// The CPU row kernel of LoRA updates against libtorch's two GEMMs on the same rows, and what a body does when the
/// kernel's load-time check disagrees (a forced fault): it adds the updates with libtorch, says so, and answers the same.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class LowRankRowsTests
{
    [Theory]
    [InlineData(0, 7)]      // a few rows: one thread
    [InlineData(10, 290)]   // several 64-row chunks: split over the OpenMP team where it has more than one thread
    public void Adds_scale_times_x_A_B_to_its_rows_only(int first, int end)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator(11);
        var (x, y, a, b, expected) = LowRankRowsCheck.Case(generator, first, end);

        Assert.Equal(100, y.stride(0)); // rows strided, as a column view of a stacked projection
        Assert.True(LowRankRows.Serves(x, y, [a, b]));
        Assert.False(LowRankRows.Serves(x, y, [a, b.t()])); // weights must be contiguous
        LowRankRows.Add(x, y, a, b, 0.5f, first, end);

        Assert.True(y.allclose(expected, rtol: 1e-5, atol: 1e-5), $"max |Δ| {(y - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void A_body_whose_row_kernel_disagrees_adds_LoRA_updates_with_libtorch_and_says_so()
    {
        var folder = RandomBodies.Write(48, 4, 200);
        var options = new BodyOptions { Device = "cpu", PrepackWeights = true, PackedMaxRows = 4096 };
        using var healthy = BertBody.Load(folder, options);
        using var faulted = BertBody.Load(folder, options with { Faults = new FastPathFaults { LowRankRows = true } });
        Assert.True(healthy.Model.Kernels.LowRankRows);
        Assert.Null(healthy.Backend.LoraUpdatesReason);
        Assert.False(faulted.Model.Kernels.LowRankRows);
        Assert.StartsWith("the row kernel failed its load-time check: disagreed with libtorch's GEMMs", faulted.Backend.LoraUpdatesReason);
        Assert.Contains(faulted.FastPathFallbacks, f => f.StartsWith("LoRA updates run on libtorch's GEMMs", StringComparison.Ordinal));
        Assert.Equal("libtorch", InferenceEngine.DescribeFastPaths(faulted)["lora_updates"]!.GetValue<string>());
        Assert.Equal("cpu_rows", InferenceEngine.DescribeFastPaths(healthy)["lora_updates"]!.GetValue<string>());

        // Two adapters on two halves of the batch: the same hidden states either way.
        using var first = LoraPassTests.RandomAdapter(healthy, new LoraSettings(4, 8), seed: 5);
        using var second = LoraPassTests.RandomAdapter(healthy, new LoraSettings(4, 8), seed: 6);
        var batch = healthy.Encode(RandomBodies.Texts);
        var half = batch.BatchSize / 2;
        LoraSegment[] segments = [new(first, 0, half), new(second, half, batch.BatchSize - half)];
        BertHost.Abstractions.BodyOutput kernel, plain;
        using (LoraPass.Enter(healthy.Model, segments)) kernel = healthy.ForwardSkippingPadding(batch);
        using (LoraPass.Enter(faulted.Model, segments)) plain = faulted.ForwardSkippingPadding(batch);
        using (kernel)
        using (plain)
            Assert.True(ReferenceOutputs.MaxAbsDiff(kernel.LastHiddenState, plain.LastHiddenState) < 1e-4);
    }
}
