using BertHost.Core.Text;
using BertHost.Core.Body;
using BertHost.Core.Lora;
using BertHost.Tests.Bert;
using BertHost.Tests.Support;
using BertHost.Tests.Training;
using static TorchSharp.torch;

namespace BertHost.Tests.Lora;

/// <summary>
/// The adapters in the body pass against an independent reference: the same body with (alpha/r)·B·A merged into its
/// weights (W' = W + scale·B·A, what PEFT's merge_and_unload computes), run alone. Random A and B (a fresh adapter's B
/// is zero, which would hide any error).
/// </summary>
[Collection(SeededTorchCollection.Name)]
public class LoraPassTests
{
    internal static LoraAdapter RandomAdapter(BertBody body, LoraSettings settings, int seed)
    {
        var adapter = LoraAdapter.Create(body.Model, settings, seed);
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed + 100);
        foreach (var pair in adapter.Pairs.Values)
            pair.B.copy_(randn(pair.B.shape, generator: generator).mul_(0.05));
        return adapter;
    }

    internal static BertBody Merged(string folder, LoraAdapter adapter)
    {
        var body = BertBody.Load(folder, new BodyOptions { Device = "cpu", CpuAttentionKernel = false });
        adapter.MergeInto(body.Model);
        return body;
    }

    private static Tensor Keep(PaddedBatch batch) =>
        tensor(batch.AttentionMask, [batch.BatchSize, batch.SequenceLength]).unsqueeze(-1).to(ScalarType.Float32);

    [Fact]
    public void A_fresh_adapter_changes_nothing_and_the_base_weights_are_never_written()
    {
        var folder = RandomBodies.Write(48, 4, 200);
        using var body = BertBody.Load(folder, new BodyOptions { Device = "cpu" });
        var before = body.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        using var adapter = LoraAdapter.Create(body.Model, new LoraSettings(), seed: 1);
        // query and value of both layers, A [8,48] and B [48,8].
        Assert.Equal(["encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value",
            "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"], adapter.Pairs.Keys);
        Assert.All(adapter.Pairs.Values, p => { Assert.Equal([8L, 48], p.A.shape); Assert.Equal([48L, 8], p.B.shape); });
        var batch = body.Encode(RandomBodies.Texts);
        using var plain = body.ForwardSkippingPadding(batch);
        BertHost.Abstractions.BodyOutput adapted;
        using (LoraPass.Enter(body.Model, [LoraSegment.All(adapter)])) adapted = body.ForwardSkippingPadding(batch);
        using (adapted) Assert.Equal(0, ReferenceOutputs.MaxAbsDiff(plain.LastHiddenState, adapted.LastHiddenState), 6);
        Assert.All(body.Model.named_parameters(), p => Assert.True(p.parameter.eq(before[p.name]).all().item<bool>(), p.name));
    }

    [Theory]
    [InlineData(false, "query,value")]
    [InlineData(true, "query,value")]
    [InlineData(true, "all-linear")]
    public void The_adapted_pass_equals_the_merged_body(bool served, string targets)
    {
        var folder = RandomBodies.Write(48, 4, 200);
        using var body = BertBody.Load(folder, served
            ? new BodyOptions { Device = "cpu", PrepackWeights = true, PackedMaxRows = 4096 }
            : new BodyOptions { Device = "cpu", CpuAttentionKernel = false });
        if (served) Assert.NotNull(body.Prepacked);
        using var adapter = RandomAdapter(body, new LoraSettings(4, 8, 0.1, LoraSettings.ParseTargets(targets)), seed: 3);
        if (targets == "all-linear") Assert.Equal(2 * 6, adapter.Pairs.Count);
        using var merged = Merged(folder, adapter);
        var batch = body.Encode(RandomBodies.Texts);
        using var scope = NewDisposeScope();
        using var reference = merged.Forward(batch);
        using var baseline = body.Forward(batch);
        BertHost.Abstractions.BodyOutput padded, packed;
        using (LoraPass.Enter(body.Model, [LoraSegment.All(adapter)]))
        {
            padded = body.Forward(batch);
            packed = body.ForwardSkippingPadding(batch);
        }
        var keep = Keep(batch);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(padded.LastHiddenState.mul(keep), reference.LastHiddenState.mul(keep)), 0, 1e-4);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(packed.LastHiddenState, reference.LastHiddenState.mul(keep)), 0, 1e-4);
        // The adapter does change the output (else the comparison proves nothing).
        Assert.True(ReferenceOutputs.MaxAbsDiff(baseline.LastHiddenState, reference.LastHiddenState) > 1e-3);
        padded.Dispose();
        packed.Dispose();
    }

    [Fact]
    public void One_pass_with_several_adapters_and_plain_rows_equals_each_merged_body_alone()
    {
        var folder = RandomBodies.Write(48, 4, 200);
        using var body = BertBody.Load(folder, new BodyOptions { Device = "cpu", PrepackWeights = true, PackedMaxRows = 4096 });
        using var a = RandomAdapter(body, new LoraSettings(4, 8, 0, ["query", "value"]), seed: 5);
        using var b = RandomAdapter(body, new LoraSettings(8, 16, 0, [LoraSettings.AllLinear]), seed: 6);
        using var c = RandomAdapter(body, new LoraSettings(2, 2, 0, ["key", "output.dense"]), seed: 7);
        var texts = RandomBodies.Texts;
        // Rows: plain ×4, a ×4, plain ×2 (two texts again), b ×4, c ×4: adapters' rows contiguous, plain rows around them.
        var rows = texts.Concat(texts).Concat(texts.Take(2)).Concat(texts).Concat(texts).ToList();
        var batch = body.Encode(rows);
        BertHost.Abstractions.BodyOutput mixed;
        using (LoraPass.Enter(body.Model, [new LoraSegment(a, 4, 4), new LoraSegment(b, 10, 4), new LoraSegment(c, 14, 4)]))
            mixed = body.ForwardSkippingPadding(batch);
        using var scope = NewDisposeScope();
        using var plain = BertBody.Load(folder, new BodyOptions { Device = "cpu", CpuAttentionKernel = false });
        var alone = body.Encode(texts);
        var keep = Keep(alone);
        void Check(BertBody reference, int first, int count = 4)
        {
            using var expected = reference.Forward(alone);
            var got = mixed.LastHiddenState.narrow(0, first, count).narrow(1, 0, alone.SequenceLength);
            Assert.InRange(ReferenceOutputs.MaxAbsDiff(got, expected.LastHiddenState.mul(keep).narrow(0, 0, count)), 0, 1e-4);
        }
        Check(plain, 0);
        Check(plain, 8, count: 2);
        foreach (var (adapter, first) in new[] { (a, 4), (b, 10), (c, 14) })
        {
            using var merged = Merged(folder, adapter);
            Check(merged, first);
        }
        mixed.Dispose();
    }
}
