using System.Text.Json;
using BertHost.Core.Bert;
using BertHost.Core.Training;
using BertHost.Tests.Support;
using BertHost.Tests.Training;
using TorchSharp;
using static TorchSharp.torch;
using BertHost.Core.Body;
using BertHost.Core.Backends;

namespace BertHost.Tests.Bert;

/// <summary>
/// Prepacked (oneDNN-layout) Linear weights: the kernels against libtorch's Linear, a prepacked body against the
/// PyTorch reference, and when the packed copies must not be used (autograd, large passes, weights trained in place).
/// </summary>
[Collection(SeededTorchCollection.Name)]
public class PrepackedWeightsTests
{
    private readonly ReferenceOutputs _reference = ReferenceOutputs.Load();

    [Fact]
    public void The_kernels_are_available_with_the_bundled_libtorch()
    {
        Assert.Null(OneDnnLinear.Unavailable);
    }

    [Theory]
    [InlineData(null, 1)]
    [InlineData(null, 128)]
    [InlineData("gelu", 37)]
    [InlineData("gelu_new", 37)]
    [InlineData("relu", 5)]
    public void Packed_projection_equals_libtorch_linear_followed_by_the_activation(string? activationName, int rows)
    {
        using var scope = NewDisposeScope();
        var (packed, expected, bytes) = ProjectBothWays(ScalarType.Float32, activationName, rows);
        Assert.Equal(48 * 96 * 4, bytes);
        Assert.Equal(expected.shape, packed.shape);
        Assert.InRange(expected.sub(packed).abs().max().item<float>(), 0, 1e-5);
    }

    /// <summary>A 48→96 Linear packed (no row limit) and run on [2, rows, 48] both ways: packed, and libtorch's Linear then the activation.</summary>
    private static (Tensor Packed, Tensor Expected, long Bytes) ProjectBothWays(ScalarType dtype, string? activationName, int rows)
    {
        manual_seed(5);
        var linear = nn.Linear(48, 96);
        using var model = nn.Sequential(("dense", linear));
        model.to(dtype);
        using var packs = PrepackedWeights.Pack(model, out var why, maxRows: long.MaxValue);
        Assert.Null(why);
        var activation = activationName is null ? null : Activations.Get(activationName);
        var x = randn(2, rows, 48).to(dtype);
        using var noGrad = no_grad();
        Assert.NotNull(packs!.For(linear, 2L * rows));
        var packed = linear.Project(x, new BertKernels(packs, CpuAttention: false), activation);
        var y = linear.call(x);
        return (packed, activation is null ? y : activation.Apply(y), packs!.Bytes);
    }

    [Fact]
    public void Packed_copies_are_skipped_with_autograd_on_large_passes_and_after_release()
    {
        using var scope = NewDisposeScope();
        var linear = nn.Linear(8, 8);
        using var model = nn.Sequential(("dense", linear));
        using var packs = PrepackedWeights.Pack(model, out _, maxRows: 64);
        Assert.Equal("set by the caller", packs!.RowLimitReason);
        Assert.Equal("up to 64 rows", packs.PassesServed);
        Assert.Null(packs.For(linear, 4)); // autograd on: the kernel has no backward
        using (no_grad())
        {
            Assert.NotNull(packs.For(linear, 4));
            Assert.NotNull(packs.For(linear, 64));
            Assert.Null(packs.For(linear, 65));
            Assert.Null(packs.For(linear, 0));
            packs.Dispose();
            Assert.Null(packs.For(linear, 4));
        }
    }

    [Fact]
    public void Without_a_given_limit_the_row_limit_is_measured_on_the_largest_weight()
    {
        using var scope = NewDisposeScope();
        var small = nn.Linear(8, 8);
        var large = nn.Linear(64, 256);
        using var model = nn.Sequential(("small", small), ("large", large));
        using var packs = PrepackedWeights.Pack(model, out _);
        Assert.NotNull(packs);
        Assert.InRange(packs!.MaxRows, PackedRowLimit.AlwaysPacked, long.MaxValue);
        Assert.Contains("rows of 64→256: oneDNN ", packs.RowLimitReason);
        using var noGrad = no_grad();
        Assert.NotNull(packs.For(small, PackedRowLimit.AlwaysPacked));
        if (packs.MaxRows < long.MaxValue) Assert.Null(packs.For(large, packs.MaxRows + 1));
        else Assert.NotNull(packs.For(large, 1 << 20));
    }

    [Theory]
    [InlineData(100000, 0, -1L)]      // oneDNN wins everywhere measured: no limit
    [InlineData(2048, 0, 2048L)]      // loses from 4096 rows on
    [InlineData(512, 0, 512L)]
    [InlineData(256, 0, 256L)]        // loses at the first measured count: only the always-packed passes
    [InlineData(100000, 0.04, -1L)]   // 4 % slower is within the tolerance (the fused GELU pays for it)
    [InlineData(100000, 0.10, 256L)]  // 10 % slower is not
    public void The_row_limit_is_the_largest_count_where_onednn_keeps_up(long winsUpTo, double slowerBy, long expected)
    {
        var measured = new List<long>();
        var (maxRows, reason) = PackedRowLimit.Choose(rows =>
        {
            measured.Add(rows);
            return (1.0, rows <= winsUpTo ? 1.0 + slowerBy : 2.0);
        }, "8→8");
        Assert.Equal(expected == -1 ? long.MaxValue : expected, maxRows);
        // Measuring stops at the first loss, measured twice to confirm it.
        var losses = measured.Where(r => r > winsUpTo || slowerBy > 0.05).ToList();
        Assert.Equal(measured.Where(r => r <= winsUpTo && slowerBy <= 0.05).Concat(losses.Take(1)).Concat(losses.Take(1)), measured);
        Assert.StartsWith($"{measured[^1]} rows of 8→8: oneDNN ", reason);
    }

    [Fact]
    public void Float16_weights_are_not_packed()
    {
        using var model = nn.Sequential(("dense", nn.Linear(8, 8)));
        model.to(ScalarType.Float16);
        Assert.Null(PrepackedWeights.Pack(model, out var why));
        Assert.Equal("float16 weights are not packed (float32 and bfloat16 are)", why);
    }

    [Theory]
    [InlineData(null, 3)]
    [InlineData("gelu", 64)]
    public void Bfloat16_weights_are_packed_where_onednn_runs_bfloat16(string? activationName, int rows)
    {
        using var scope = NewDisposeScope();
        if (!OneDnnLinear.SupportsBFloat16)
        {
            using var model = nn.Sequential(("dense", nn.Linear(8, 8)));
            model.to(ScalarType.BFloat16);
            Assert.Null(PrepackedWeights.Pack(model, out var why));
            Assert.Equal("oneDNN does not run bfloat16 on this CPU (it needs AVX-512)", why);
            return;
        }
        var (packed, expected, bytes) = ProjectBothWays(ScalarType.BFloat16, activationName, rows);
        Assert.Equal(48 * 96 * 2, bytes);
        Assert.Equal(ScalarType.BFloat16, packed.dtype);
        // Both round to bfloat16 (8 significant bits) at different points: a few units of its last place apart.
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(packed.to(ScalarType.Float32), expected.to(ScalarType.Float32)), 0, 0.05);
    }

    [Theory]
    [InlineData("single")]
    [InlineData("padded_batch")]
    public void A_prepacked_body_matches_the_pytorch_reference(string name)
    {
        var c = _reference.Case(name);
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder(c.GetProperty("model").GetString()!), new BodyOptions { Device = "cpu", PrepackWeights = true });
        Assert.NotNull(body.Prepacked);
        Assert.Null(body.NotPrepackedReason);
        using var scope = NewDisposeScope();
        var (ids, types, mask) = (Tensor(c, "input_ids"), Tensor(c, "token_type_ids"), Tensor(c, "attention_mask"));
        var keep = mask.unsqueeze(-1).to(ScalarType.Float32);
        var expected = ReferenceOutputs.ToTensor(c.GetProperty("last_hidden_state")).mul(keep);

        using var full = body.Forward(ids, types, mask);
        using var noGrad = no_grad();
        using var skipping = body.Model.ForwardSkippingPadding(ids, types, mask, outputHiddenStates: false);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(full.LastHiddenState.mul(keep), expected), 0, 1e-4);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(skipping.LastHiddenState, expected), 0, 1e-4);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(skipping.PooledOutput, ReferenceOutputs.ToTensor(c.GetProperty("pooler_output"))), 0, 1e-4);
    }

    [Fact]
    public void A_prepacked_bfloat16_body_agrees_with_the_unpacked_one()
    {
        var folder = ReferenceOutputs.ModelFolder("tiny-bert");
        using var packed = BertBody.Load(folder, new BodyOptions { Device = "cpu", DType = "bfloat16", PrepackWeights = true });
        Assert.Equal(OneDnnLinear.SupportsBFloat16, packed.Prepacked is not null);
        if (packed.Prepacked is null) return;
        using var plain = BertBody.Load(folder, new BodyOptions { Device = "cpu", DType = "bfloat16" });
        using var fp32 = BertBody.Load(folder, new BodyOptions { Device = "cpu" });
        var batch = packed.Encode(["a cat sat on the mat", "the harbour at night, lit by the ferries"]);
        using var scope = NewDisposeScope();
        using var a = packed.ForwardSkippingPadding(batch);
        using var b = plain.ForwardSkippingPadding(batch);
        using var reference = fp32.ForwardSkippingPadding(batch);
        var x = a.LastHiddenState.to(ScalarType.Float32);
        var y = b.LastHiddenState.to(ScalarType.Float32);
        var cosine = nn.functional.cosine_similarity(x.flatten(0, 1), reference.LastHiddenState.flatten(0, 1), dim: 1);
        var keep = tensor(batch.AttentionMask).to(ScalarType.Bool);
        // bfloat16 keeps 8 significant bits: both paths stay as close to float32 as bfloat16 allows, and to each other.
        Assert.InRange(cosine.masked_select(keep).min().item<float>(), 0.999f, 1.0001f);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(x, y), 0, 0.15);
    }

    [Fact]
    public void Training_the_body_in_place_drops_the_packed_copies_so_inference_sees_the_new_weights()
    {
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { Device = "cpu", PrepackWeights = true });
        using var head = TrainingData.Head(body);
        var train = TrainingData.Examples(head, TrainingData.WriteJsonl(16, seed: 3));
        var batch = body.Encode(["a cat sat", "the harbour at night"]);
        var query = body.Model.encoder.layer[0].attention.@self.query;
        var packs = body.Prepacked!;
        using (no_grad()) Assert.NotNull(packs.For(query, 8));

        new Trainer(body, head, new TrainingOptions { Mode = TrainingMode.Full, Epochs = 1, BatchSize = 8, LearningRate = 1e-2, WarmupRatio = 0 }).Train(train);

        using var noGrad = no_grad();
        Assert.Null(packs.For(query, 8));
        Assert.Null(body.Model.Kernels.Packed);
        using var served = body.ForwardSkippingPadding(batch);
        using var plain = body.Forward(batch);
        var keep = tensor(batch.AttentionMask, [batch.BatchSize, batch.SequenceLength]).unsqueeze(-1).to(ScalarType.Float32);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(served.LastHiddenState, plain.LastHiddenState.mul(keep)), 0, 1e-5);
    }

    [Fact]
    public void Disposing_the_body_releases_its_packed_copies()
    {
        var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { Device = "cpu", PrepackWeights = true });
        var query = body.Model.encoder.layer[0].attention.@self.query;
        var packs = body.Prepacked!;
        Assert.True(packs.Bytes > 0);
        body.Dispose();
        using var noGrad = no_grad();
        Assert.Null(packs.For(query, 8));
    }

    [Fact]
    public void The_native_heap_is_tuned_on_linux()
    {
        Assert.Equal(OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("BERTHOST_MALLOC_TUNING") != "0", NativeHeap.EnsureTuned());
    }

    private static Tensor Tensor(JsonElement c, string name) => ReferenceOutputs.ToTensor(c.GetProperty(name), ScalarType.Int64);
}
