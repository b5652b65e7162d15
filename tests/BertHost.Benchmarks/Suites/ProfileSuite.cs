using System.Text.Json.Nodes;
using BertHost.Benchmarks.Harness;
using BertHost.Core.Bert;
using BertHost.Core.Text;
using static TorchSharp.torch;
using BertHost.Core.Body;
using BertHost.Core.Backends;

namespace BertHost.Benchmarks.Suites;

/// <summary>
/// Where a body pass spends its time (8×128, float32 and dynamic int8): each kind of operation of one layer timed alone
/// on the loaded weights, times the number of layers, next to the whole pass. Guides the speed work; not part of <c>all</c>.
/// </summary>
public sealed class ProfileSuite(BenchOptions options)
{
    public Section Run()
    {
        var section = new Section("Profile of one body pass (8×128)", "model", "precision", "part", "ms per pass (median)", "share of the pass");
        foreach (var name in options.Models)
        foreach (var quantize in new[] { QuantizeModes.None, QuantizeModes.DynamicInt8 })
        {
            using var body = BertBody.Load(BenchModels.Ensure(name, options.WorkFolder), new BodyOptions { Device = "cpu", PrepackWeights = true, Quantize = quantize });
            var precision = quantize == QuantizeModes.None ? "float32" : "int8";
            var c = body.Config;
            var batch = PaddedBatch.Create(BodySuite.Synthetic(8, 128, c.VocabSize, seed: 8), body.Tokenizer.PadTokenId);
            using var noGrad = no_grad();
            var layer = body.Model.encoder.layer[0];
            var a = layer.attention.@self;
            using var x = randn(8, 128, c.HiddenSize);
            using var wide = randn(8, 128, c.IntermediateSize);
            using var q = randn(8, c.NumAttentionHeads, 128, c.HeadDim);
            using var k = randn(8, c.NumAttentionHeads, 128, c.HeadDim);
            using var v = randn(8, c.NumAttentionHeads, 128, c.HeadDim);
            // An int8 body has freed the float32 weights of its int8 Linears: the fused row is float32's.
            using var qkvWeight = precision == "float32" ? cat([a.query.weight!, a.key.weight!, a.value.weight!], 0) : null;
            using var qkvBias = cat([a.query.bias!, a.key.bias!, a.value.bias!], 0);
            var scale = 1.0 / Math.Sqrt(c.HeadDim);
            // The same projections as the kernel reads them: [tokens, hidden], one sequence per 128 rows.
            using var flatQ = q.transpose(1, 2).reshape(8 * 128, c.HiddenSize);
            using var flatK = k.transpose(1, 2).reshape(8 * 128, c.HiddenSize);
            using var flatV = v.transpose(1, 2).reshape(8 * 128, c.HiddenSize);
            int[] starts = [.. Enumerable.Range(0, 9).Select(i => i * 128)];
            var l = c.NumHiddenLayers;

            (string Part, int Times, Action Run)[] parts =
            [
                ("whole pass (body.Forward)", 1, () => { using var o = body.Forward(batch); }),
                ("Q, K, V projections as served (int8: one stacked GEMM)", l, () => { using var s = NewDisposeScope(); a.Project(x); }),
                .. qkvWeight is null ? Array.Empty<(string, int, Action)>() :
                [("Q, K, V as one fused libtorch Linear", l, () => { using var s = NewDisposeScope(); nn.functional.linear(x, qkvWeight, qkvBias); })],
                ("attention core, CpuAttention (served where it applies)", l, () => { using var s = NewDisposeScope(); CpuAttention.Run(flatQ, flatK, flatV, starts, c.NumAttentionHeads, c.HeadDim); }),
                ("attention core, SDPA", l, () => { using var s = NewDisposeScope(); nn.functional.scaled_dot_product_attention(q, k, v); }),
                ("attention core, manual (matmul, softmax, matmul)", l, () => { using var s = NewDisposeScope(); q.matmul(k.transpose(-1, -2)).mul_(scale).softmax(-1).matmul(v); }),
                ("heads split + merge (view, transpose, reshape)", l, () => { using var s = NewDisposeScope(); x.view(8, 128, c.NumAttentionHeads, c.HeadDim).transpose(1, 2).transpose(1, 2).reshape(8, 128, c.HiddenSize); }),
                ("attention output dense + residual + LayerNorm", l, () => { using var s = NewDisposeScope(); layer.attention.output.call(x, x); }),
                ("intermediate dense + GELU", l, () => { using var s = NewDisposeScope(); layer.intermediate.call(x); }),
                ("GELU alone", l, () => { using var s = NewDisposeScope(); nn.functional.gelu(wide); }),
                ("output dense + residual + LayerNorm", l, () => { using var s = NewDisposeScope(); layer.output.call(wide, x); }),
            ];
            // int8 GEMMs alone, on layer 0's float32 weights quantized here: the same kernel as an int8 body's, with Q, K and V
            // also as one fused 384→3·384 projection (one activation quantization and one GEMM instead of three).
            using var gemms = precision == "float32" ? Int8Gemms(layer, c) : null;
            if (gemms is not null)
            {
                var (quantized, fused, separate, up, down, _) = gemms;
                var int8Rows = new (string, int, Action)[]
                {
                    ("int8 GEMM: Q, K, V fused (one Linear)", l, () => { using var s = NewDisposeScope(); quantized.For(fused)!(x.view(-1, c.HiddenSize)); }),
                    ("int8 GEMM: Q, K, V separate (3 Linear)", l, () => { using var s = NewDisposeScope(); foreach (var q in separate) quantized.For(q)!(x.view(-1, c.HiddenSize)); }),
                    ("int8 GEMM: intermediate dense (no GELU)", l, () => { using var s = NewDisposeScope(); quantized.For(up)!(x.view(-1, c.HiddenSize)); }),
                    ("int8 GEMM: output dense (no residual, LayerNorm)", l, () => { using var s = NewDisposeScope(); quantized.For(down)!(wide.view(-1, c.IntermediateSize)); }),
                };
                parts = [.. parts, .. int8Rows];
            }
            // The same int8 body with Q, K and V as three GEMMs, for the stacked GEMM's gain on the whole pass.
            using var unstacked = precision == "int8"
                ? BertBody.Load(BenchModels.Ensure(name, options.WorkFolder), new BodyOptions { Device = "cpu", PrepackWeights = true, Quantize = quantize, StackInt8Projections = false })
                : null;
            if (unstacked is not null)
                parts = [parts[0], ("whole pass, Q, K, V as three int8 GEMMs", 1, () => { using var o = unstacked.Forward(batch); }), .. parts[1..]];
            var stats = Measure.RoundRobin(parts.Select(p => new Contender(p.Part, p.Run)).ToList(), 2, options.Quick ? 3 : 5, name == "base" ? 2 : 6, TimeSpan.FromMilliseconds(50));
            var whole = stats[parts[0].Part].Median;
            foreach (var (part, times, _) in parts)
            {
                var ms = stats[part].Median * times * 1000;
                section.Add(new JsonObject { ["model"] = name, ["precision"] = precision, ["part"] = part, ["ms_per_pass"] = ms },
                    BenchModels.Describe(name).Split(' ')[0], precision, part, Report.F(ms, 1), $"{ms / (whole * 1000) * 100:F0}%");
            }
        }
        section.Notes.Add("int8 GEMM rows: layer 0's float32 weights quantized as an int8 body quantizes them (dynamic, per output channel), timed without what the served Linear adds around them.");
        section.Notes.Add("Per-layer parts are timed alone on layer 0's weights and multiplied by the number of layers; alternatives (fused vs separate, SDPA vs manual) are rows of their own, so shares do not add up to 100 %.");
        return section;
    }

    /// <summary>Layer 0's projections as standalone Linears (owned by <paramref name="Owner"/>) and their int8 packs.</summary>
    private sealed record Int8GemmSet(QuantizedWeights Quantized, TorchSharp.Modules.Linear Fused, TorchSharp.Modules.Linear[] Separate,
        TorchSharp.Modules.Linear Up, TorchSharp.Modules.Linear Down, nn.Module Owner) : IDisposable
    {
        public void Dispose()
        {
            Quantized.Dispose();
            Owner.Dispose();
        }
    }

    private static Int8GemmSet? Int8Gemms(BertLayer layer, BertConfig c)
    {
        var a = layer.attention.@self;
        TorchSharp.Modules.Linear Copy(Tensor weight, Tensor bias)
        {
            var linear = nn.Linear(weight.shape[1], weight.shape[0]);
            using (no_grad())
            {
                linear.weight!.copy_(weight);
                linear.bias!.copy_(bias);
            }
            return linear;
        }
        using var qkvWeight = cat([a.query.weight!, a.key.weight!, a.value.weight!], 0);
        using var qkvBias = cat([a.query.bias!, a.key.bias!, a.value.bias!], 0);
        var fused = Copy(qkvWeight, qkvBias);
        TorchSharp.Modules.Linear[] separate = [Copy(a.query.weight!, a.query.bias!), Copy(a.key.weight!, a.key.bias!), Copy(a.value.weight!, a.value.bias!)];
        var up = Copy(layer.intermediate.dense.weight!, layer.intermediate.dense.bias!);
        var down = Copy(layer.output.dense.weight!, layer.output.dense.bias!);
        var owner = nn.Sequential([("fused", fused), ("q", separate[0]), ("k", separate[1]), ("v", separate[2]), ("up", up), ("down", down)]);
        var quantized = QuantizedWeights.Quantize(owner, [], out _);
        if (quantized is null)
        {
            owner.Dispose();
            return null;
        }
        return new Int8GemmSet(quantized, fused, separate, up, down, owner);
    }
}
