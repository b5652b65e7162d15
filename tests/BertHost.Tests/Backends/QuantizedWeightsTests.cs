using BertHost.Core.Backends;
using BertHost.Core.Bert;
using BertHost.Core.Body;
using BertHost.Core.Checkpoints;
using BertHost.Core.Lora;
using BertHost.Tests.Lora;
using BertHost.Core.Serving;
using BertHost.Tests.Bert;
using BertHost.Tests.Support;
using BertHost.Tests.Training;
using static TorchSharp.torch;

namespace BertHost.Tests.Backends;

/// <summary>Dynamic int8 projections: the kernel against its own quantization in float32, exclusions, the body as served.</summary>
[Collection(SeededTorchCollection.Name)]
public class QuantizedWeightsTests
{
    [Fact]
    public void An_int8_projection_stays_within_int8_rounding_of_the_float_one_and_never_runs_with_autograd()
    {
        using var scope = NewDisposeScope();
        using var one = OneLinear.Quantized(3, 96, 200);
        var (linear, int8) = (one.Linear, one.Int8);
        Assert.Null(one.Why);
        Assert.Equal(96 * 200, int8!.Bytes);
        Assert.True(int8.IsQuantized(linear));
        Assert.Null(int8.For(linear)); // autograd on: the kernel has no backward
        using var noGrad = no_grad();
        var x = randn(37, 96);
        var fast = int8.For(linear)!(x);
        var plain = linear.call(x);
        // 8-bit activations and weights: about 1 % of the output's range, far from the float result's own rounding.
        var difference = FastPathCheck.RelativeDifference(fast, plain);
        Assert.InRange(difference, 1e-4, 0.05);
        // What the kernel computes is its quantization, evaluated exactly.
        var expected = nn.functional.linear(QuantizedWeights.FakeQuantizeRows(x, int8.ReducedRange ? 127 : 255), Dequantized(linear), linear.bias!);
        Assert.InRange(FastPathCheck.RelativeDifference(fast, expected), 0, 1e-2);
    }

    [Fact]
    public void A_row_gets_the_same_int8_output_whatever_else_is_in_the_call()
    {
        using var scope = NewDisposeScope();
        using var one = OneLinear.Quantized(5, 64, 48);
        var (linear, int8) = (one.Linear, one.Int8);
        using var noGrad = no_grad();
        var rows = randn(5, 64);
        // Neighbours far larger and far smaller than the rows: one scale per call would round the rows on a coarser or
        // finer grid each time.
        var loud = randn(3, 64).mul(40);
        var quiet = randn(2, 64).mul(0.01);
        var alone = int8!.For(linear)!(rows);
        var withLoud = int8.For(linear)!(cat([loud, rows]))[TensorIndex.Slice(3)];
        var withQuiet = int8.For(linear)!(cat([rows, quiet]))[TensorIndex.Slice(0, 5)];
        Assert.Equal(0, ReferenceOutputs.MaxAbsDiff(alone, withLoud));
        Assert.Equal(0, ReferenceOutputs.MaxAbsDiff(alone, withQuiet));
        // Batched 3-D inputs keep their shape; a zero row gives the bias exactly.
        var batched = int8.For(linear)!(stack([rows, rows]));
        Assert.Equal([2L, 5, 48], batched.shape);
        Assert.Equal(0, ReferenceOutputs.MaxAbsDiff(batched[1], alone));
        Assert.Equal(0, ReferenceOutputs.MaxAbsDiff(int8.For(linear)!(zeros(1, 64)), linear.bias!.unsqueeze(0)));
    }

    [Fact]
    public void Linears_reading_one_input_run_as_one_stacked_int8_GEMM_that_computes_what_their_own_packs_do()
    {
        using var scope = NewDisposeScope();
        manual_seed(21);
        var (q, k, v) = (nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 32));
        var model = nn.Sequential(("q", q), ("k", k), ("v", v));
        using var stacked = QuantizedWeights.Quantize(model, [], out _, faults: null, fuse: [[q, k, v]])!;
        using var separate = QuantizedWeights.Quantize(model, [], out _)!;
        Assert.Equal(1, stacked.FusedGroups);
        Assert.Equal(0, separate.FusedGroups);
        Assert.Equal(separate.Bytes, stacked.Bytes);
        Assert.Null(stacked.ForFused([q, k, v])); // autograd on
        using var noGrad = no_grad();
        Assert.Null(stacked.ForFused([k, q, v])); // not the order they were stacked in
        Assert.Null(separate.ForFused([q, k, v]));
        var x = randn(37, 64).mul(3);
        var all = stacked.ForFused([q, k, v])!(x);
        Assert.Equal([37L, 160], all.shape);
        // Per-channel weight scales and per-row activation scales: each Linear's columns are exactly its own pack's output.
        var expected = cat([separate.For(q)!(x), separate.For(k)!(x), separate.For(v)!(x)], 1);
        Assert.Equal(0, ReferenceOutputs.MaxAbsDiff(all, expected));
        // A member asked for alone still answers (its columns of the stacked product).
        Assert.Equal(0, ReferenceOutputs.MaxAbsDiff(stacked.For(k)!(x), expected.narrow(1, 64, 64)));
        Assert.True(stacked.IsQuantized(v));
    }

    [Fact]
    public void An_int8_body_stacks_each_layers_query_key_and_value_and_answers_as_with_three_GEMMs_with_and_without_LoRA()
    {
        var folder = RandomBodies.Write(64, 4, 200);
        using var stacked = Load(folder, []);
        using var separate = BertBody.Load(folder, new BodyOptions
        {
            Device = "cpu", PrepackWeights = true, PackedMaxRows = 4096, Quantize = QuantizeModes.DynamicInt8, StackInt8Projections = false,
        });
        Assert.Equal(2, stacked.Quantized!.FusedGroups);
        Assert.Equal(0, separate.Quantized!.FusedGroups);
        var batch = stacked.Encode(RandomBodies.Texts);
        using var scope = NewDisposeScope();
        void Same(Func<BertBody, BertHost.Abstractions.BodyOutput> pass)
        {
            using var a = pass(stacked);
            using var b = pass(separate);
            Assert.InRange(ReferenceOutputs.MaxAbsDiff(a.LastHiddenState, b.LastHiddenState), 0, 1e-5);
        }
        Same(body => body.ForwardSkippingPadding(batch));
        Same(body => body.Forward(batch));
        // LoRA updates on the query and value columns of the stacked product, one adapter per half of the batch.
        using var first = LoraPassTests.RandomAdapter(stacked, new LoraSettings(4, 8), seed: 5);
        using var second = LoraPassTests.RandomAdapter(stacked, new LoraSettings(4, 8), seed: 6);
        var half = batch.BatchSize / 2;
        LoraSegment[] segments = [new(first, 0, half), new(second, half, batch.BatchSize - half)];
        Same(body =>
        {
            using var pass = LoraPass.Enter(body.Model, segments);
            return body.ForwardSkippingPadding(batch);
        });
        // A group with a member kept in float32 runs as three Linears.
        using var excluded = Load(folder, ["encoder.layer.1.attention.self.key"]);
        Assert.Equal(1, excluded.Quantized!.FusedGroups);
        // A stacked shape whose check disagrees leaves every layer on three int8 GEMMs, and the body says why.
        using var faulted = Load(folder, [], new FastPathFaults { Int8Stacked = true });
        Assert.Equal(0, faulted.Quantized!.FusedGroups);
        Assert.Null(stacked.Quantized.StackedReason);
        Assert.True(faulted.Quantized.IsQuantized(faulted.Model.encoder.layer[0].attention.@self.key));
        Assert.Contains(faulted.FastPathFallbacks, f => f.StartsWith("query, key and value run as three int8 GEMMs: the stacked ", StringComparison.Ordinal) &&
            f.Contains("stacked fbgemm int8 kernel disagreed with its quantization computed in float32 at 1 rows", StringComparison.Ordinal));
        Assert.InRange(ServedDifference(stacked, faulted, ReferenceOutputs.MaxAbsDiff), 0, 1e-5);
    }

    [Fact]
    public void A_projection_finished_in_its_row_pass_matches_the_operators_it_replaces()
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        var linear = nn.Linear(96, 64);
        var model = nn.Sequential(("dense", linear));
        using var int8 = QuantizedWeights.Quantize(model, [], out _)!;
        var norm = nn.LayerNorm(64, 1e-12);
        using (no_grad())
        {
            norm.weight!.copy_(randn(64).mul(0.3).add(1));
            norm.bias!.copy_(randn(64).mul(0.1));
        }
        var kernels = new BertKernels(null, true, int8);
        var x = randn(3, 13, 96).mul(2);
        var residual = randn(3, 13, 64);
        Assert.Null(linear.ProjectResidualNorm(x, residual, norm, kernels)); // not checked yet: the caller runs the operators
        int8.RowEpilogues = true;
        Assert.Null(linear.ProjectResidualNorm(x, residual, norm, kernels)); // gradients on: no int8 at all
        using var noGrad = no_grad();
        var fused = linear.ProjectResidualNorm(x, residual, norm, kernels)!;
        var expected = nn.functional.layer_norm(int8.For(linear)!(x.reshape(-1, 96)).reshape(3, 13, 64).add(residual), [64], norm.weight, norm.bias, 1e-12);
        Assert.Equal(expected.shape, fused.shape);
        // The same int8 product: only the order LayerNorm sums in differs.
        Assert.InRange(FastPathCheck.RelativeDifference(fused, expected), 0, 1e-5);
        Assert.Null(RowEpilogueCheck.Disagreement(384, 1536, 1e-12, fault: false));
        Assert.StartsWith("residual LayerNorm row epilogue disagreed with libtorch's add and layer_norm at 1 rows of 384",
            RowEpilogueCheck.Disagreement(384, 1536, 1e-12, fault: true));
    }

    [Fact]
    public void An_expansion_finished_with_GELU_in_its_row_pass_matches_libtorchs_gelu()
    {
        using var scope = NewDisposeScope();
        manual_seed(13);
        var linear = nn.Linear(64, 203); // 203: whole vectors and a scalar tail
        using var int8 = QuantizedWeights.Quantize(nn.Sequential(("dense", linear)), [], out _)!;
        int8.RowEpilogues = true;
        using var noGrad = no_grad();
        var x = randn(2, 9, 64).mul(3);
        var fused = linear.Project(x, new BertKernels(null, true, int8), Activations.Get("gelu"));
        var expected = nn.functional.gelu(int8.For(linear)!(x.reshape(-1, 64))).reshape(2, 9, 203);
        Assert.InRange(FastPathCheck.RelativeDifference(fused, expected), 0, 1e-6);
        // The tails, zero and the signs, against libtorch's own.
        var edges = tensor(new[] { -30f, -9f, -5.5f, -1e-20f, -0f, 0f, 1e-20f, 0.5f, 3f, 9f, 30f, -0.7f, 2.2f, -3.3f, 4.4f, -1f, 1f });
        var rows = edges.clone();
        unsafe
        {
            GeluRows.Instance.Apply(new Span<float>(TensorMemory.Floats(rows), 17), 0);
        }
        var reference = nn.functional.gelu(edges);
        // Within what the erf approximation allows (1.5e-7 · |x|; libtorch's loses more to cancellation in the negative tail).
        Assert.True((rows - reference).abs().le(edges.abs().clamp_min(1).mul(1e-6)).all().item<bool>());
        Assert.Equal(0f, rows[0].item<float>(), 0f);
        Assert.Equal(30f, rows[10].item<float>());
    }

    [Fact]
    public void A_body_whose_row_epilogue_fails_its_check_runs_the_operators_and_says_why()
    {
        var folder = RandomBodies.Write(64, 2, 128);
        using var fused = Load(folder, []);
        using var faulted = Load(folder, [], new FastPathFaults { Int8RowEpilogue = true });
        Assert.True(fused.Quantized!.RowEpilogues);
        Assert.False(faulted.Quantized!.RowEpilogues);
        Assert.Empty(fused.FastPathFallbacks);
        Assert.Contains(faulted.FastPathFallbacks, f => f.StartsWith(
            "int8 projections end in libtorch's operators (add and layer_norm, gelu): the residual LayerNorm row epilogue disagreed", StringComparison.Ordinal));
        Assert.Equal(["residual_layernorm", "gelu"], InferenceEngine.DescribeFastPaths(fused)["int8_row_epilogues"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Empty(InferenceEngine.DescribeFastPaths(faulted)["int8_row_epilogues"]!.AsArray());
        // The same int8 products; LayerNorm's rounding can move a value across a rounding boundary of the next layer's
        // activation grid, so the outputs agree to int8 rounding, not to float32's.
        var difference = ServedDifference(fused, faulted, FastPathCheck.RelativeDifference);
        Console.WriteLine($"row epilogue vs operators: relative difference {difference:G3}");
        Assert.InRange(difference, 0, 1e-2);
    }

    [Fact]
    public void OneDNN_and_fbgemm_compute_the_same_quantization_of_a_projection()
    {
        if (!CpuFeatures.Vnni)
        {
            Console.WriteLine("skipped: oneDNN's int8 kernel is used only where the CPU has VNNI");
            return;
        }
        using var scope = NewDisposeScope();
        manual_seed(8);
        var linear = nn.Linear(200, 96);
        var model = nn.Sequential(("dense", linear));
        using var onednn = QuantizedWeights.Quantize(model, [], out _, faults: null, kernels: [Int8Kernel.OneDnn])!;
        using var fbgemm = QuantizedWeights.Quantize(model, [], out _, faults: null, kernels: [Int8Kernel.Fbgemm])!;
        Assert.Equal(Int8Kernel.OneDnn, onednn.KernelOf(linear));
        Assert.Equal(Int8Kernel.Fbgemm, fbgemm.KernelOf(linear));
        Assert.Equal("onednn", onednn.Projections.Single().KernelName);
        using var noGrad = no_grad();
        // Rows of very different magnitudes, a zero row and rows reaching ±magnitude exactly (the grid's ends).
        var x = cat([randn(61, 200).mul(tensor(new float[] { 0.01f, 1, 30 }).repeat(21)[TensorIndex.Slice(0, 61)].unsqueeze(1)), zeros(1, 200), ones(2, 200)]);
        var a = onednn.For(linear)!(x);
        var b = fbgemm.For(linear)!(x);
        var expected = nn.functional.linear(QuantizedWeights.FakeQuantizeRows(x, 255), Dequantized(linear), linear.bias!);
        // The same grid (levels 1 to 255 for ±magnitude): only float32 summation order differs, unless a value sits within
        // float rounding of a tie.
        Console.WriteLine($"oneDNN vs its quantization {FastPathCheck.RelativeDifference(a, expected):G3}, vs fbgemm {FastPathCheck.RelativeDifference(a, b):G3}");
        Assert.InRange(FastPathCheck.RelativeDifference(a, expected), 0, 1e-5);
        Assert.InRange(FastPathCheck.RelativeDifference(a, b), 0, 1e-5);
        Assert.Equal(0, ReferenceOutputs.MaxAbsDiff(a[61], linear.bias!));
        // A row holding a non-finite value answers NaN in that row only.
        x[5, 7] = float.NaN;
        x[6, 3] = float.PositiveInfinity;
        var poisoned = onednn.For(linear)!(x);
        Assert.True(poisoned[5].isnan().all().item<bool>());
        Assert.True(poisoned[6].isnan().all().item<bool>());
        Assert.Equal(0, ReferenceOutputs.MaxAbsDiff(cat([poisoned[..5], poisoned[7..]]), cat([a[..5], a[7..]])));
    }

    [Fact]
    public void A_body_whose_oneDNN_kernel_fails_its_check_serves_on_fbgemm_and_says_why()
    {
        if (!CpuFeatures.Vnni)
        {
            Console.WriteLine("skipped: oneDNN's int8 kernel is used only where the CPU has VNNI");
            return;
        }
        var folder = RandomBodies.Write(64, 4, 200);
        using var onednn = Load(folder, []);
        using var faulted = Load(folder, [], new FastPathFaults { Int8OneDnn = true });
        var query = onednn.Model.encoder.layer[0].attention.@self.query;
        Assert.Equal(Int8Kernel.OneDnn, onednn.Quantized!.KernelOf(query));
        Assert.Equal(Int8Kernel.Fbgemm, faulted.Quantized!.KernelOf(faulted.Model.encoder.layer[0].attention.@self.query));
        Assert.Equal(2, faulted.Quantized.FusedGroups);
        Assert.Empty(onednn.FastPathFallbacks);
        Assert.Contains(faulted.FastPathFallbacks, f => f.StartsWith("projection 64→200 runs on fbgemm: oneDNN int8 kernel disagreed with its quantization computed in float32 at 1 rows", StringComparison.Ordinal));
        var described = InferenceEngine.DescribeFastPaths(faulted);
        Assert.All(described["quantized_projections"]!.AsArray(), p => Assert.Equal("fbgemm", p!["kernel"]!.GetValue<string>()));
        Assert.All(InferenceEngine.DescribeFastPaths(onednn)["quantized_projections"]!.AsArray(), p => Assert.Equal("onednn", p!["kernel"]!.GetValue<string>()));
        Assert.Equal("onednn", InferenceEngine.DescribeFastPaths(onednn)["int8_stacked_qkv_kernel"]!.GetValue<string>());
        Assert.Equal("fbgemm", described["int8_stacked_qkv_kernel"]!.GetValue<string>());
        Assert.Contains(faulted.FastPathFallbacks, f => f.StartsWith("query, key and value run as one stacked int8 GEMM on fbgemm: stacked oneDNN int8 kernel disagreed", StringComparison.Ordinal));
        // The same quantization on both kernels: only float32 summation order differs.
        Assert.InRange(ServedDifference(onednn, faulted, ReferenceOutputs.MaxAbsDiff), 0, 1e-4);
    }

    [Fact]
    public void Weights_are_quantized_per_output_row_as_quantize_per_channel_defines_it()
    {
        using var scope = NewDisposeScope();
        using var one = OneLinear.Quantized(12, 50, 33);
        var weight = one.Linear.weight!.detach().clone();
        weight[3] = zeros(50); // an all-zero row (scale clamped to 1e-12)
        weight[4, 7] = weight[4].abs().max().mul(-2); // the row's extreme is negative
        using var noGrad = no_grad();
        var int8 = one.Int8!.Int8Weight(weight).to(ScalarType.Int32).data<int>().ToArray();
        var w = weight.data<float>().ToArray();
        for (var row = 0; row < 33; row++)
        {
            var span = w.AsSpan(row * 50, 50);
            var max = 0f;
            foreach (var v in span) max = MathF.Max(max, MathF.Abs(v));
            var scale = MathF.Max(max, 1e-12f) / 127f;
            var inverse = 1f / scale;
            for (var i = 0; i < 50; i++)
                Assert.Equal(Math.Clamp((int)MathF.Round(span[i] * inverse, MidpointRounding.ToEven), -128, 127), int8[row * 50 + i]);
        }
        Assert.Equal(-127, int8[4 * 50 + 7]);
        Assert.All(int8.AsSpan(3 * 50, 50).ToArray(), v => Assert.Equal(0, v));
    }

    /// <summary>One seeded Linear, quantized on its own.</summary>
    private sealed record OneLinear(TorchSharp.Modules.Linear Linear, nn.Module Model, QuantizedWeights? Int8, string? Why) : IDisposable
    {
        public static OneLinear Quantized(long seed, int inputs, int outputs)
        {
            manual_seed(seed);
            var linear = nn.Linear(inputs, outputs);
            var model = nn.Sequential(("dense", linear));
            return new(linear, model, QuantizedWeights.Quantize(model, [], out var why), why);
        }

        public void Dispose()
        {
            Int8?.Dispose();
            Model.Dispose();
        }
    }

    /// <summary>The weight on the grid the kernel stores it on: symmetric int8, one scale per output row.</summary>
    private static Tensor Dequantized(TorchSharp.Modules.Linear linear)
    {
        var w = linear.weight!.detach();
        var scale = w.abs().amax([1], keepdim: true).clamp_min(1e-12).div(127.0);
        return w.div(scale).round().clamp(-128, 127).mul(scale);
    }

    [Fact]
    public void Excluded_names_stay_float32_and_a_name_that_matches_nothing_is_refused()
    {
        var folder = RandomBodies.Write(64, 4, 200);
        using var body = Load(folder, ["encoder.layer.1.*", "*.intermediate.dense"]);
        var int8 = body.Quantized!;
        var layer1 = body.Model.encoder.layer[1];
        Assert.False(int8.IsQuantized(layer1.attention.@self.query));
        Assert.False(int8.IsQuantized(body.Model.encoder.layer[0].intermediate.dense));
        Assert.True(int8.IsQuantized(body.Model.encoder.layer[0].attention.@self.query));
        var square = int8.Projections.Single(p => p.Shape == "64→64");
        Assert.Equal(4 + 1, square.Int8Linears); // layer 0's Q, K, V, output + the pooler
        Assert.Equal(["encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.key",
            "encoder.layer.1.attention.self.value", "encoder.layer.1.attention.output.dense"], square.Excluded);
        Assert.Equal(2, int8.Projections.Single(p => p.Shape == "64→200").FloatLinears);
        // Float32 Linears keep their oneDNN copies, int8 ones need none: layer 1's six Linears and layer 0's intermediate.
        Assert.Equal(4L * (4 * 64 * 64 + 64 * 200 + 200 * 64 + 64 * 200), body.Prepacked!.Bytes);

        var e = Assert.Throws<BodyLoadException>(() => Load(folder, ["encoder.layers.1.*"]));
        Assert.Equal("body.quantize dynamic_int8: quantize_exclude 'encoder.layers.1.*' matches no Linear of the model (names look like encoder.layer.0.attention.self.query)", e.Message);
    }

    [Fact]
    public void A_shape_whose_kernel_fails_its_check_stays_float32_and_the_body_says_why()
    {
        var folder = RandomBodies.Write(64, 4, 200);
        using var body = BertBody.Load(folder, new BodyOptions
        {
            Device = "cpu", Quantize = QuantizeModes.DynamicInt8, Faults = new FastPathFaults { Int8 = true }, PackedMaxRows = 4096,
        });
        Assert.Null(body.Quantized);
        // Every kernel was tried on the shape, and each one's disagreement is named.
        Assert.Contains(body.FastPathFallbacks, f => f.StartsWith("body.quantize dynamic_int8: the body serves in float32: no Linear was quantized (64→64: ", StringComparison.Ordinal) &&
            f.Contains("fbgemm int8 kernel disagreed with its quantization computed in float32 at 1 rows", StringComparison.Ordinal) &&
            f.Contains("oneDNN int8 kernel disagreed", StringComparison.Ordinal) == CpuFeatures.Vnni);
        Assert.Equal("float32", body.PrecisionByPart["projections"]);
        var e = Assert.Throws<BodyLoadException>(() => BertBody.Load(folder, new BodyOptions { Device = "cpu", Quantize = "int4" }));
        Assert.Equal("body.quantize must be one of none, dynamic_int8, got 'int4'", e.Message);
    }

    [Fact]
    public void A_quantized_body_keeps_its_outputs_close_to_float32_and_reports_its_precision()
    {
        var folder = RandomBodies.Write(64, 4, 200);
        using var int8 = Load(folder, []);
        using var fp32 = BertBody.Load(folder, new BodyOptions { Device = "cpu", PrepackWeights = true, PackedMaxRows = 4096 });
        var batch = int8.Encode(RandomBodies.Texts);
        using var scope = NewDisposeScope();
        using var a = int8.ForwardSkippingPadding(batch);
        using var b = fp32.ForwardSkippingPadding(batch);
        var keep = tensor(batch.AttentionMask).to(ScalarType.Bool);
        var cosine = nn.functional.cosine_similarity(a.LastHiddenState.flatten(0, 1), b.LastHiddenState.flatten(0, 1), dim: 1).masked_select(keep);
        Assert.InRange(cosine.min().item<float>(), 0.98f, 1.0001f);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(a.LastHiddenState, b.LastHiddenState), 1e-4, 1.0);

        var described = InferenceEngine.DescribeFastPaths(int8);
        Assert.StartsWith("int8 (13 of 13 Linears; weights per output channel, activations per row", described["precision"]!["projections"]!.GetValue<string>());
        Assert.Equal("float32", described["precision"]!["attention_core"]!.GetValue<string>());
        Assert.Equal(["64→64", "64→200", "200→64"], described["quantized_projections"]!.AsArray().Select(p => p!["shape"]!.GetValue<string>()));
        Assert.Null(int8.Prepacked); // every Linear runs in int8: nothing left to pack
        Assert.Equal("no Linear left to pack", int8.NotPrepackedReason);
        // The int8 Linears hold no float32 copy of their weights; the float32 body's still do.
        Assert.All(Linears(int8), w => Assert.Equal(0, w));
        Assert.All(Linears(fp32), w => Assert.True(w > 0));
    }

    [Fact]
    public void A_text_gets_the_same_int8_hidden_states_alone_and_among_other_texts()
    {
        var folder = RandomBodies.Write(64, 4, 200);
        using var body = Load(folder, []);
        var texts = RandomBodies.Texts;
        using var scope = NewDisposeScope();
        using var together = body.ForwardSkippingPadding(body.Encode(texts));
        for (var i = 0; i < texts.Length; i++)
        {
            var one = body.Encode([texts[i]]);
            using var alone = body.ForwardSkippingPadding(one);
            var length = one.Lengths[0];
            // Only float32 rounding differs (libtorch's GEMMs block differently by batch size); int8 rounding would not.
            var difference = ReferenceOutputs.MaxAbsDiff(alone.LastHiddenState[0].narrow(0, 0, length), together.LastHiddenState[i].narrow(0, 0, length));
            Assert.InRange(difference, 0, 1e-4);
        }
    }

    private static IEnumerable<long> Linears(BertBody body) =>
        body.Model.encoder.modules().OfType<TorchSharp.Modules.Linear>().Select(l => l.weight!.NumberOfElements);

    [Fact]
    public void Serving_in_a_precision_the_cpu_would_emulate_is_refused()
    {
        var folder = ReferenceOutputs.ModelFolder("tiny-bert");
        var options = new BodyOptions { Device = "cpu", DType = "bfloat16", RefuseEmulatedPrecision = true };
        if (CpuFeatures.NativeBFloat16)
        {
            using var body = BertBody.Load(folder, options);
            Assert.Equal(ScalarType.BFloat16, body.DType);
        }
        else
        {
            var e = Assert.Throws<BodyLoadException>(() => BertBody.Load(folder, options));
            Assert.StartsWith("dtype bfloat16 would be emulated on this CPU (it has neither AVX512-BF16 nor AMX-BF16)", e.Message);
        }
        // Bodies that do not serve (tests, conversions) may still emulate it.
        using var emulated = BertBody.Load(folder, options with { RefuseEmulatedPrecision = false });
        Assert.Equal(ScalarType.BFloat16, emulated.DType);
    }

    /// <summary>The two bodies' serving passes over the same random texts, their last hidden states compared by <paramref name="measure"/>.</summary>
    private static double ServedDifference(BertBody a, BertBody b, Func<Tensor, Tensor, double> measure)
    {
        var batch = a.Encode(RandomBodies.Texts);
        using var scope = NewDisposeScope();
        using var first = a.ForwardSkippingPadding(batch);
        using var second = b.ForwardSkippingPadding(batch);
        return measure(first.LastHiddenState, second.LastHiddenState);
    }

    private static BertBody Load(string folder, IReadOnlyList<string> exclude, FastPathFaults? faults = null) => BertBody.Load(folder, new BodyOptions
    {
        Device = "cpu", PrepackWeights = true, PackedMaxRows = 4096, Quantize = QuantizeModes.DynamicInt8, QuantizeExclude = exclude, Faults = faults,
    });
}
