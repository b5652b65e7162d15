using System.Runtime.Intrinsics;
using BertHost.Core.Bert;
using BertHost.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using BertHost.Core.Body;
using BertHost.Core.Backends;

namespace BertHost.Tests.Bert;

/// <summary>
/// The AVX-512 attention core (<see cref="CpuAttention"/>) against libtorch's SDPA run on each sequence alone, and
/// bodies that use it against the same bodies on SDPA. <see cref="CpuAttention.Run"/> computes the same values with
/// either register width on any machine (.NET emulates what the CPU lacks), so both variants are checked everywhere.
/// </summary>
public class CpuAttentionTests
{
    [Theory]
    [InlineData(2, 16, "cpu_avx512")]
    [InlineData(12, 32, "cpu_avx512")]
    [InlineData(4, 64, "cpu_avx512")]
    [InlineData(4, 8, "cpu_avx2")]
    [InlineData(12, 32, "cpu_avx2")]
    [InlineData(4, 64, "cpu_avx2")]
    public void Each_sequence_gets_sdpa_of_its_own_tokens(int heads, int headDim, string instructionSet)
    {
        using var scope = NewDisposeScope();
        // Lengths around the 16-key padding and 128-query blocks, an empty sequence, and one longer than two blocks.
        int[] lengths = [1, 5, 17, 0, 64, 129, 300];
        var starts = Starts(lengths);
        var hidden = heads * headDim;
        var generator = new Generator((ulong)headDim);
        var (q, k, v) = (randn(starts[^1], hidden, generator: generator), randn(starts[^1], hidden, generator: generator), randn(starts[^1], hidden, generator: generator));

        var context = CpuAttention.Run(q, k, v, starts, heads, headDim, instructionSet);

        Assert.Equal(new long[] { starts[^1], hidden }, context.shape);
        for (var b = 0; b < lengths.Length; b++)
        {
            if (lengths[b] == 0) continue;
            var expected = SdpaOfOneSequence(q, k, v, starts[b], lengths[b], heads, headDim);
            var got = context.narrow(0, starts[b], lengths[b]);
            Assert.InRange(got.sub(expected).abs().max().item<float>(), 0, 2e-6);
        }
    }

    [Theory]
    [InlineData("cpu_avx512")]
    [InlineData("cpu_avx2")]
    public void A_padded_batch_with_prefix_masks_gets_what_masked_sdpa_gives_every_position(string instructionSet)
    {
        using var scope = NewDisposeScope();
        const int heads = 4, headDim = 32, t = 150;
        int[] keyLengths = [150, 37, 1];
        var generator = new Generator(4);
        var (q, k, v) = (randn(3 * t, heads * headDim, generator: generator), randn(3 * t, heads * headDim, generator: generator), randn(3 * t, heads * headDim, generator: generator));
        var mask = zeros(3, 1, 1, t);
        for (var b = 0; b < 3; b++) mask[b].narrow(-1, keyLengths[b], t - keyLengths[b]).fill_(float.MinValue);

        var context = CpuAttention.RunPadded(q, k, v, t, keyLengths, heads, headDim, instructionSet);

        Tensor Heads(Tensor x) => x.view(3, t, heads, headDim).transpose(1, 2);
        var expected = nn.functional.scaled_dot_product_attention(Heads(q), Heads(k), Heads(v), mask).transpose(1, 2).reshape(3 * t, heads * headDim);
        Assert.InRange(context.sub(expected).abs().max().item<float>(), 0, 2e-6);
        Assert.Equal(keyLengths, CpuAttention.PrefixKeyLengths(mask)!);
    }

    [Fact]
    public void Only_masks_that_keep_a_prefix_of_every_row_give_key_lengths()
    {
        using var scope = NewDisposeScope();
        var prefix = tensor(new[] { 0f, 0, 0, float.MinValue, 0, 0, 0, 0 }).view(2, 1, 1, 4);
        Assert.Equal([3, 4], CpuAttention.PrefixKeyLengths(prefix)!);
        var hole = tensor(new[] { 0f, float.MinValue, 0, 0 }).view(1, 1, 1, 4);
        Assert.Null(CpuAttention.PrefixKeyLengths(hole));
        var empty = tensor(new[] { float.MinValue, float.MinValue }).view(1, 1, 1, 2);
        Assert.Null(CpuAttention.PrefixKeyLengths(empty));
        var soft = tensor(new[] { 0f, -3f }).view(1, 1, 1, 2); // a bias, not a mask
        Assert.Null(CpuAttention.PrefixKeyLengths(soft));
        Assert.Null(CpuAttention.PrefixKeyLengths(prefix.to(ScalarType.BFloat16)));
        Assert.Null(CpuAttention.PrefixKeyLengths(prefix.view(2, 4)));
    }

    [Fact]
    public void Rows_of_a_wider_tensor_give_the_same_context()
    {
        using var scope = NewDisposeScope();
        int[] starts = [0, 40, 47];
        var qkv = randn(47, 3 * 64, generator: new Generator(1));
        var (q, k, v) = (qkv.narrow(1, 0, 64), qkv.narrow(1, 64, 64), qkv.narrow(1, 128, 64));
        Assert.Equal(192, q.stride(0));

        var strided = CpuAttention.Run(q, k, v, starts, 2, 32);
        var dense = CpuAttention.Run(q.contiguous(), k.contiguous(), v.contiguous(), starts, 2, 32);

        Assert.Equal(0f, strided.sub(dense).abs().max().item<float>());
    }

    [Fact]
    public void Large_scores_do_not_overflow_the_softmax()
    {
        using var scope = NewDisposeScope();
        int[] starts = [0, 33];
        var generator = new Generator(2);
        // Scores of a few hundred: exp overflows float32 above 88.7 unless the row maximum is subtracted first.
        var (q, k, v) = (randn(33, 32, generator: generator).mul(10), randn(33, 32, generator: generator).mul(10), randn(33, 32, generator: generator));

        var context = CpuAttention.Run(q, k, v, starts, 1, 32);

        Assert.False(context.isnan().any().item<bool>());
        // Rounding of scores this large moves exp's argument by ~1e-5 (relative to the values); both sides round.
        Assert.InRange(context.sub(SdpaOfOneSequence(q, k, v, 0, 33, 1, 32)).abs().max().item<float>(), 0, 1e-4);
    }

    [Fact]
    public void Inconsistent_inputs_are_refused_with_the_reason()
    {
        using var scope = NewDisposeScope();
        var x = randn(10, 32);
        var rows = Assert.Throws<ArgumentException>(() => CpuAttention.Run(x, x, x, [0, 6, 12], 2, 16));
        var heads = Assert.Throws<ArgumentException>(() => CpuAttention.Run(x, x, x, [0, 10], 8, 4));
        Assert.Equal("head size 4 is not a multiple of 8 floats", heads.Message);
        Assert.Equal("q has 10 rows but the sequences cover 12", rows.Message);
        var width = Assert.Throws<ArgumentException>(() => CpuAttention.Run(x, randn(10, 48), x, [0, 10], 2, 16));
        Assert.Equal("k must be [tokens, 32] with a dense last dimension, got shape [10,48]", width.Message);
        var order = Assert.Throws<ArgumentException>(() => CpuAttention.Run(x, x, x, [0, 7, 3, 10], 2, 16));
        Assert.Equal("sequence starts must not decrease (sequence 1)", order.Message);
    }

    [Fact]
    public void Only_float32_cpu_projections_that_need_no_gradient_are_served()
    {
        using var scope = NewDisposeScope();
        var x = randn(4, 64);
        var trained = randn(4, 64).requires_grad_();
        var accelerated = Vector256.IsHardwareAccelerated;
        Assert.Equal(accelerated, CpuAttention.Serves(x, x, x, 32)); // a frozen body's projections, autograd on or off
        Assert.False(CpuAttention.Serves(x, trained, x, 32)); // the kernel has no backward
        using (no_grad()) Assert.Equal(accelerated, CpuAttention.Serves(x, trained, x, 32));
        Assert.Equal(Vector512.IsHardwareAccelerated ? "cpu_avx512" : accelerated ? "cpu_avx2" : null, CpuAttention.InstructionSet(32));
        Assert.Equal(accelerated ? "cpu_avx2" : null, CpuAttention.InstructionSet(8));
        Assert.False(CpuAttention.Serves(x, x, x, 12));
        var half = x.to(ScalarType.BFloat16);
        Assert.False(CpuAttention.Serves(half, half, half, 32));
    }

    [Fact]
    public void Bodies_with_the_kernel_match_the_same_bodies_on_sdpa()
    {
        using var scope = NewDisposeScope();
        var config = new BertConfig { VocabSize = 50, HiddenSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 96, MaxPositionEmbeddings = 160 };
        using var model = new BertModel(config);
        BertInitializer.Initialize(model, seed: 11);
        model.eval();
        Assert.True(model.UseCpuAttentionKernel);
        Assert.Equal(Vector256.IsHardwareAccelerated, CpuAttention.Supports(DeviceType.CPU, ScalarType.Float32, config.HeadDim));
        var generator = new Generator(3);
        var ids = randint(5, 50, [3, 150], generator: generator);
        var types = zeros_like(ids);
        var full = ones_like(ids);
        // Rows of 150, 37 and 1 real tokens, and a mask with a hole in the middle (allowed by BertModel).
        var padded = full.clone();
        padded[1].narrow(0, 37, 113).fill_(0);
        padded[2].narrow(0, 1, 149).fill_(0);
        padded[0].narrow(0, 60, 10).fill_(0);
        using var noGrad = no_grad();

        var prefix = padded.clone();
        prefix[0].fill_(1); // rows of 150, 37 and 1 tokens without the hole: the padded pass's kernel path
        var withKernel = (Plain: model.Forward(ids, types, full, false), Skipping: model.ForwardSkippingPadding(ids, types, padded, true),
            Padded: model.Forward(ids, types, prefix, false));
        model.UseCpuAttentionKernel = false;
        var onSdpa = (Plain: model.Forward(ids, types, full, false), Skipping: model.ForwardSkippingPadding(ids, types, padded, true),
            Padded: model.Forward(ids, types, prefix, false));

        Assert.InRange(withKernel.Plain.LastHiddenState.sub(onSdpa.Plain.LastHiddenState).abs().max().item<float>(), 0, 1e-5);
        // Every position, padding included, as a masked padded pass computes it.
        Assert.InRange(withKernel.Padded.LastHiddenState.sub(onSdpa.Padded.LastHiddenState).abs().max().item<float>(), 0, 1e-5);
        Assert.InRange(withKernel.Skipping.LastHiddenState.sub(onSdpa.Skipping.LastHiddenState).abs().max().item<float>(), 0, 1e-5);
        Assert.InRange(withKernel.Skipping.PooledOutput!.sub(onSdpa.Skipping.PooledOutput!).abs().max().item<float>(), 0, 1e-5);
        Assert.Equal(onSdpa.Skipping.HiddenStates!.Count, withKernel.Skipping.HiddenStates!.Count);
    }

    [Fact]
    public void Body_options_choose_the_attention_core()
    {
        var folder = ReferenceOutputs.ModelFolder("tiny-bert");
        using var served = BertBody.Load(folder);
        using var onSdpa = BertBody.Load(folder, new BodyOptions { CpuAttentionKernel = false });
        Assert.True(served.Model.UseCpuAttentionKernel);
        Assert.False(onSdpa.Model.UseCpuAttentionKernel);
        Assert.Equal(CpuAttention.InstructionSet(8) ?? "sdpa", served.AttentionCore); // head size 8: AVX2 registers
        Assert.Equal("sdpa", onSdpa.AttentionCore);
    }

    private static int[] Starts(int[] lengths)
    {
        var starts = new int[lengths.Length + 1];
        for (var i = 0; i < lengths.Length; i++) starts[i + 1] = starts[i] + lengths[i];
        return starts;
    }

    private static Tensor SdpaOfOneSequence(Tensor q, Tensor k, Tensor v, int start, int length, int heads, int headDim)
    {
        Tensor Heads(Tensor x) => x.narrow(0, start, length).reshape(length, heads, headDim).transpose(0, 1);
        return nn.functional.scaled_dot_product_attention(Heads(q), Heads(k), Heads(v))
            .transpose(0, 1).reshape(length, heads * headDim);
    }
}
