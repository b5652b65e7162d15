using System.Text.Json.Nodes;
using BertHost.Abstractions.Text;
using BertHost.Benchmarks.Harness;
using BertHost.Benchmarks.Onnx;
using BertHost.Core.Backends;
using BertHost.Core.Body;
using BertHost.Core.Config;
using BertHost.Core.Text;
using static TorchSharp.torch;

namespace BertHost.Benchmarks.Suites;

/// <summary>
/// Serving past float32 on the CPU: the host's int8 body (dynamic quantization) and bfloat16 body (where the CPU runs it
/// natively) against the float32 body as served, and ONNX Runtime on the same weights in float32 and as its own int8
/// graph (the pattern <c>quantize_dynamic(per_channel=True)</c> writes). Fixed shapes and the SST-2 length mix; the
/// error of each format against float32 on real sentences.
/// </summary>
public sealed class PrecisionSuite(BenchOptions options)
{
    private const int SequenceLength = 128;
    private const string Float32 = "host float32";
    private const string Int8 = "host int8";
    private const string Int8Fbgemm = "host int8 on fbgemm";
    private const string BFloat16 = "host bfloat16";
    private const string OrtFloat32 = "onnxruntime float32";
    private const string OrtInt8 = "onnxruntime int8";

    public Section Run()
    {
        var section = new Section("Precision: int8 and bfloat16 bodies against float32 and ONNX Runtime (CPU)",
            "model", "case", "engine", "ms per batch (median)", "spread", "sequences/s", "host float32 time ÷ this", "ORT float32 ÷ this", "ORT int8 ÷ this");
        var sentences = Paths.Sst2Sentences();
        foreach (var name in options.Models)
        {
            var folder = BenchModels.Ensure(name, options.WorkFolder);
            using var fp32 = BertBody.Load(folder, new BodyOptions { Device = "cpu", PrepackWeights = true });
            using var int8 = BertBody.Load(folder, new BodyOptions { Device = "cpu", PrepackWeights = true, Quantize = QuantizeModes.DynamicInt8 });
            // The body as served picks oneDNN's int8 GEMM where the CPU has VNNI; fbgemm's is its fallback, measured beside it.
            using var int8Fbgemm = QuantizedWeights.DefaultKernels[0] == Int8Kernel.Fbgemm ? null : BertBody.Load(folder, new BodyOptions
            {
                Device = "cpu", PrepackWeights = true, Quantize = QuantizeModes.DynamicInt8, Int8Kernels = [Int8Kernel.Fbgemm],
            });
            using var bf16 = CpuFeatures.NativeBFloat16 ? BertBody.Load(folder, new BodyOptions { Device = "cpu", DType = "bfloat16", PrepackWeights = true }) : null;
            if (bf16 is null) section.Notes.Add("This CPU has no native bfloat16 (AVX512-BF16 or AMX): no bfloat16 rows (the host refuses to serve it emulated).");
            using var ortFp32 = new OnnxBody(BertOnnxExporter.Export(fp32.Model), options.Threads, spinning: !ThreadPolicy.PassiveWaiting);
            using var ortInt8 = new OnnxBody(BertOnnxExporter.Export(fp32.Model, int8: true), options.Threads, spinning: !ThreadPolicy.PassiveWaiting);
            foreach (var fallback in int8.FastPathFallbacks) section.Notes.Add($"{BenchModels.Describe(name)} int8: {fallback}");

            var engines = new List<(string Name, Action<PaddedBatch> Pass)>
            {
                (Float32, b => BodySuite.HostPass(fp32, b)),
                (Int8, b => BodySuite.HostPass(int8, b)),
                (OrtFloat32, ortFp32.Infer),
                (OrtInt8, ortInt8.Infer),
            };
            if (int8Fbgemm is not null) engines.Insert(2, (Int8Fbgemm, b => BodySuite.HostPass(int8Fbgemm, b)));
            if (bf16 is not null) engines.Insert(2, (BFloat16, b => BodySuite.HostPass(bf16, b)));

            foreach (var b in new[] { 1, 8 })
            {
                var batch = PaddedBatch.Create(BodySuite.Synthetic(b, SequenceLength, fp32.Config.VocabSize, seed: b), fp32.Tokenizer.PadTokenId);
                var contenders = engines.Select(e => new Contender(e.Name, () => e.Pass(batch))).ToList();
                var calls = Math.Max(1, (name == "base" ? 1 : 4) * 8 / b);
                var stats = Measure.RoundRobin(contenders, options.Quick ? 1 : 2, options.Quick ? 3 : 9, options.Quick ? Math.Max(1, calls / 2) : calls);
                AddRows(section, name, $"{b}×{SequenceLength}", stats, b);
            }
            if (sentences is not null)
            {
                var count = options.Quick ? 128 : name == "base" ? 256 : 512;
                var sequences = sentences.Take(count).Select(s => fp32.Tokenizer.Encode(s, null, new EncodeOptions { MaxLength = fp32.MaxSequenceLength })[0]).ToList();
                var defaults = new BatchingSection();
                var planned = BodySuite.Plan(sequences, defaults.MaxBatchTokens ?? PassBudget.DefaultTokens(fp32.Device), defaults.MaxBatchRequests)
                    .Select(rows => PaddedBatch.Create(rows, fp32.Tokenizer.PadTokenId)).ToList();
                var contenders = engines.Select(e => new Contender(e.Name, () => planned.ForEach(e.Pass))).ToList();
                var stats = Measure.RoundRobin(contenders, warmup: 1, rounds: options.Quick ? 2 : 3, callsPerBlock: 1);
                AddRows(section, name, $"SST-2 mix ({count} sentences)", stats, count);
                AddErrors(section, name, sentences, fp32, int8, bf16, ortFp32, ortInt8);
            }
        }
        section.Notes.Add("Engines run in alternating blocks; ratios are medians over rounds of the within-round ratio (above 1 = this engine is faster). The int8 body quantizes every Linear (weights per output channel at load, activations per row) and runs them on oneDNN's int8 GEMM where the CPU has VNNI (\"on fbgemm\": the same quantization on its fallback kernel); ONNX Runtime's int8 graph quantizes the same Linears per output channel, its activations per call (its pooler stays float32).");
        return section;
    }

    private static void AddRows(Section section, string model, string caseName, Dictionary<string, Stats> stats, int sequences)
    {
        foreach (var (engine, s) in stats)
        {
            double Ratio(string reference) => stats.TryGetValue(reference, out var r) ? Stats.PairedRatio(r, s) : double.NaN;
            var (vsHost, vsOrt, vsOrtInt8) = (Ratio(Float32), Ratio(OrtFloat32), Ratio(OrtInt8));
            section.Add(new JsonObject
            {
                ["model"] = model,
                ["case"] = caseName,
                ["engine"] = engine,
                ["seconds_median"] = s.Median,
                ["spread"] = s.Spread,
                ["sequences_per_second"] = sequences / s.Median,
                ["host_float32_time_over_this"] = vsHost,
                ["ort_float32_time_over_this"] = vsOrt,
                ["ort_int8_time_over_this"] = vsOrtInt8,
            }, BenchModels.Describe(model).Split(' ')[0], caseName, engine, Report.F(s.Median * 1000, 1), $"{s.Spread * 100:F0}%",
                Report.F(sequences / s.Median, 1), Report.F(vsHost, 2), Report.F(vsOrt, 2), Report.F(vsOrtInt8, 2));
        }
    }

    /// <summary>Each format's last hidden states against float32's on real sentences (per real token).</summary>
    private static void AddErrors(Section section, string name, IReadOnlyList<string> sentences, BertBody fp32, BertBody int8, BertBody? bf16,
        OnnxBody ortFp32, OnnxBody ortInt8)
    {
        var batch = fp32.Encode(sentences.Take(64).ToList());
        using var scope = NewDisposeScope();
        using var reference = fp32.ForwardSkippingPadding(batch);
        var keep = tensor(batch.AttentionMask).to(ScalarType.Bool);
        var expected = reference.LastHiddenState.flatten(0, 1);
        string Error(Tensor hidden)
        {
            var x = hidden.to(ScalarType.Float32).flatten(0, 1);
            var cosine = nn.functional.cosine_similarity(x, expected, dim: 1).masked_select(keep);
            var diff = x.sub(expected).abs().amax([1]).masked_select(keep);
            return $"per-token cosine to float32 mean {cosine.mean().item<float>():F5} (min {cosine.min().item<float>():F4}), max |Δ| {diff.max().item<float>():F3}";
        }
        using var a = int8.ForwardSkippingPadding(batch);
        section.Notes.Add($"{BenchModels.Describe(name)}, 64 SST-2 sentences: host int8 {Error(a.LastHiddenState)}.");
        if (bf16 is not null)
        {
            using var b = bf16.ForwardSkippingPadding(batch);
            section.Notes.Add($"{BenchModels.Describe(name)}, 64 SST-2 sentences: host bfloat16 {Error(b.LastHiddenState)}.");
        }
        var shape = new long[] { batch.BatchSize, batch.SequenceLength, fp32.Config.HiddenSize };
        section.Notes.Add($"{BenchModels.Describe(name)}, 64 SST-2 sentences: ORT int8 {Error(tensor(ortInt8.Run(batch).Hidden).view(shape))} " +
                          $"(ORT float32: {Error(tensor(ortFp32.Run(batch).Hidden).view(shape))}).");
    }
}
