using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Serving;
using BertHost.Tests.Support;
using BertHost.Tests.Training;
using static TorchSharp.torch;
using BertHost.Core.Body;
using BertHost.Core.Backends;

namespace BertHost.Tests.Bert;

/// <summary>
/// Bodies of shapes whose projections have in/out features that are not multiples of oneDNN's 64-column blocks (hidden
/// 48, 96, 160, 312, 384 with odd intermediate sizes; TinyBERT is 312/1200): the pass as served (prepacked weights,
/// attention kernel, padding skipped) against the plain pass (libtorch Linear and SDPA, padded).
/// </summary>
[Collection(SeededTorchCollection.Name)]
public class ServedBodyShapesTests
{
    [Theory]
    [InlineData(48, 4, 192)]
    [InlineData(96, 4, 200)]
    [InlineData(160, 4, 600)]
    [InlineData(312, 12, 1200)]
    [InlineData(384, 12, 1200)]
    [InlineData(384, 6, 1536)]
    public void The_served_pass_equals_the_plain_pass(int hidden, int heads, int intermediate)
    {
        var folder = RandomBodies.Write(hidden, heads, intermediate);
        using var served = LoadServed(folder, faults: null);
        using var plain = BertBody.Load(folder, new BodyOptions { Device = "cpu", CpuAttentionKernel = false });
        Assert.NotNull(served.Prepacked);
        var batch = served.Encode(RandomBodies.Texts);
        using var scope = NewDisposeScope();
        using var a = served.ForwardSkippingPadding(batch);
        using var b = plain.Forward(batch);
        var keep = tensor(batch.AttentionMask, [batch.BatchSize, batch.SequenceLength]).unsqueeze(-1).to(ScalarType.Float32);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(a.LastHiddenState, b.LastHiddenState.mul(keep)), 0, 1e-4);
        // Each distinct shape is checked once and the verdict covers its siblings: 2 layers × (Q, K, V, output) + pooler.
        var square = served.Prepacked!.Projections.Single(p => p.Shape == $"{hidden}→{hidden}");
        Assert.Equal(2 * 4 + 1, square.Linears);
        Assert.Equal(2 * 6 + 1, served.Prepacked.Projections.Sum(p => p.Linears));
        Assert.Empty(served.FastPathFallbacks);
    }

    [Fact]
    public void A_blocked_layout_that_fails_its_check_is_served_padded()
    {
        var folder = RandomBodies.Write(48, 4, 200);
        using var served = LoadServed(folder, new FastPathFaults { PackedLayouts = new HashSet<string> { PackedLayouts.Blocked } });
        Assert.All(served.Prepacked!.Projections, p =>
        {
            Assert.Equal(PackedLayouts.Padded, p.Layout);
            Assert.StartsWith("blocked layout disagreed with libtorch's Linear at 1 rows (relative difference", p.Reason);
        });
        Assert.Contains(served.FastPathFallbacks, f => f.StartsWith("projection 48→200 (float32) runs padded: blocked layout disagreed"));
        // 48→200 is padded to 64→256 and back: what is served still equals the plain pass.
        AssertServedEqualsPlain(served, folder);
    }

    [Fact]
    public void Projections_whose_every_layout_fails_stay_unpacked_and_the_body_says_why()
    {
        var folder = RandomBodies.Write(48, 4, 200);
        using var served = LoadServed(folder, new FastPathFaults { PackedLayouts = new HashSet<string> { PackedLayouts.Blocked, PackedLayouts.Padded } });
        Assert.Null(served.Prepacked);
        Assert.StartsWith("oneDNN's packed kernels disagreed with libtorch's Linear for every projection shape (48→48: blocked layout disagreed", served.NotPrepackedReason);
        Assert.Contains(served.FastPathFallbacks, f => f.StartsWith("Linear weights not prepacked: oneDNN's packed kernels disagreed"));
        Assert.Null(served.Model.Kernels.Packed);
        AssertServedEqualsPlain(served, folder);
    }

    [Fact]
    public void An_attention_kernel_that_fails_its_check_leaves_attention_to_sdpa()
    {
        // Head size 16: the kernel serves it with AVX-512 or AVX2 registers.
        var folder = RandomBodies.Write(64, 4, 200);
        using var healthy = LoadServed(folder, faults: null);
        if (CpuAttention.InstructionSet(16) is null)
        {
            Console.WriteLine("skipped: this CPU has neither AVX-512 nor AVX2, so the attention kernel is never selected or checked");
            return;
        }
        using var served = LoadServed(folder, new FastPathFaults { AttentionKernel = true });
        Assert.Equal(CpuAttention.InstructionSet(16), healthy.AttentionCore);
        Assert.Equal("sdpa", served.AttentionCore);
        Assert.False(served.Model.UseCpuAttentionKernel);
        Assert.StartsWith("the CPU kernel failed its load-time check: packed sequences of 1/5/17/64/129 tokens: disagreed with libtorch's SDPA", served.AttentionCoreReason);
        Assert.Null(healthy.AttentionCoreReason);
        AssertServedEqualsPlain(served, folder);
    }

    [Fact]
    public void The_body_description_reports_each_shape_and_every_fallback()
    {
        var folder = RandomBodies.Write(48, 4, 200);
        using var faulted = LoadServed(folder, new FastPathFaults { PackedLayouts = new HashSet<string> { PackedLayouts.Blocked }, AttentionKernel = true });
        var described = InferenceEngine.DescribeFastPaths(faulted);
        var shapes = described["packed_projections"]!.AsArray();
        Assert.Equal(["48→48", "48→200", "200→48"], shapes.Select(p => p!["shape"]!.GetValue<string>()));
        Assert.Equal([9, 2, 2], shapes.Select(p => p!["linears"]!.GetValue<int>()));
        Assert.All(shapes, p => Assert.Equal("padded", p!["layout"]!.GetValue<string>()));
        Assert.Equal(faulted.FastPathFallbacks.Count, described["fallbacks"]!.AsArray().Count);
        Assert.Equal(faulted.AttentionCoreReason, described["attention_core_reason"]!.GetValue<string>());

        using var healthy = LoadServed(folder, faults: null);
        var fine = InferenceEngine.DescribeFastPaths(healthy);
        Assert.All(fine["packed_projections"]!.AsArray(), p =>
        {
            Assert.Equal("blocked", p!["layout"]!.GetValue<string>());
            Assert.Null(p["reason"]);
        });
        Assert.Empty(fine["fallbacks"]!.AsArray());
    }

    /// <summary>A body loaded as served (prepacked, attention kernel on), with its row limit fixed to spare the measurement.</summary>
    private static BertBody LoadServed(string folder, FastPathFaults? faults) =>
        BertBody.Load(folder, new BodyOptions { Device = "cpu", PrepackWeights = true, PackedMaxRows = 4096, Faults = faults });

    private static void AssertServedEqualsPlain(BertBody served, string folder)
    {
        using var plain = BertBody.Load(folder, new BodyOptions { Device = "cpu", CpuAttentionKernel = false });
        var batch = served.Encode(RandomBodies.Texts);
        using var scope = NewDisposeScope();
        using var a = served.ForwardSkippingPadding(batch);
        using var b = plain.Forward(batch);
        var keep = tensor(batch.AttentionMask, [batch.BatchSize, batch.SequenceLength]).unsqueeze(-1).to(ScalarType.Float32);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(a.LastHiddenState, b.LastHiddenState.mul(keep)), 0, 1e-4);
    }
}

/// <summary>Randomly initialised model folders of a given shape, written once per test run.</summary>
internal static class RandomBodies
{
    public static readonly string[] Texts =
    [
        "a cat sat on the mat",
        "the harbour at night , lit by the ferries that cross it every twenty minutes until the last one leaves",
        "ok",
        string.Join(' ', Enumerable.Repeat("the quick brown fox jumps over the lazy dog", 16)),
    ];

    public static string Write(int hidden, int heads, int intermediate, int layers = 2)
    {
        var folder = Path.Combine(Path.GetTempPath(), "berthost-tests", $"random-h{hidden}-a{heads}-i{intermediate}-l{layers}");
        if (File.Exists(Path.Combine(folder, "model.safetensors"))) return folder;
        var vocab = ReferenceOutputs.ModelFolder("tiny-bert");
        var config = BertConfig.Load(Path.Combine(vocab, "config.json")) with
        {
            HiddenSize = hidden, NumAttentionHeads = heads, IntermediateSize = intermediate, NumHiddenLayers = layers,
        };
        using var model = new BertModel(config, addPoolingLayer: true);
        BertInitializer.Initialize(model, seed: 11);
        var staging = folder + "." + Guid.NewGuid().ToString("N");
        ModelFolderWriter.Save(model, vocab, staging);
        try { Directory.Move(staging, folder); }
        catch (IOException) when (File.Exists(Path.Combine(folder, "model.safetensors"))) { Directory.Delete(staging, true); }
        return folder;
    }
}
