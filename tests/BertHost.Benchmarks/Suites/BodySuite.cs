using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using BertHost.Benchmarks.Harness;
using BertHost.Benchmarks.Onnx;
using BertHost.Core.Bert;
using BertHost.Core.Config;
using BertHost.Core.Serving;
using BertHost.Core.Text;
using static TorchSharp.torch;
using BertHost.Core.Body;
using BertHost.Core.Backends;

namespace BertHost.Benchmarks.Suites;

/// <summary>
/// Body forward throughput: fixed shapes (batch 1 and 8 × 128 tokens) and SST-2 sentences in arrival order. With
/// <c>withOnnx</c>, ONNX Runtime runs the same weights (exported from the loaded body, outputs checked) in alternating
/// blocks, and each host row carries ORT's time ÷ the host's (above 1 = the host is faster).
/// </summary>
public sealed class BodySuite(BenchOptions options, bool withOnnx)
{
    private const int SequenceLength = 128;
    private readonly int _warmup = options.Quick ? 1 : 2;
    private readonly int _rounds = options.Quick ? 3 : 9;

    public Section Run()
    {
        var section = new Section(withOnnx ? "Body forward: host vs ONNX Runtime (float32, CPU)" : "Body forward (host)",
            "model", "case", "engine", "ms per batch (median)", "spread", "sequences/s", "tokens/s", "ORT time ÷ host time");
        var sentences = Paths.Sst2Sentences();
        foreach (var name in options.Models)
        {
            var folder = BenchModels.Ensure(name, options.WorkFolder);
            var onCpuFp32 = options.Device == "cpu" && DeviceSelection.ParseDType(options.DType) == ScalarType.Float32;
            // The body as `serve` loads it (prepacked weights where they apply), and where it is prepacked the same body
            // in the same dtype with libtorch's plain Linear, so the prepacking's effect is measured in the same rounds.
            using var body = BertBody.Load(folder, new BodyOptions { Device = options.Device, DType = options.DType, PrepackWeights = true });
            using var plain = body.Prepacked is not null ? BertBody.Load(folder, new BodyOptions { Device = "cpu", DType = options.DType }) : null;
            // Likewise the served body with libtorch's SDPA for the attention core, where the host's own kernel runs.
            using var sdpa = body.AttentionCore != "sdpa"
                ? BertBody.Load(folder, new BodyOptions { Device = options.Device, DType = options.DType, PrepackWeights = true, CpuAttentionKernel = false })
                : null;
            if (body.NotPrepackedReason is { } why) section.Notes.Add($"{BenchModels.Describe(name)}: weights not prepacked ({why}).");
            if (body.Prepacked is { } packs)
                section.Notes.Add($"{BenchModels.Describe(name)}: prepacked weights serve passes of {packs.PassesServed}, as measured at load ({packs.RowLimitReason}).");
            using var onnx = withOnnx && onCpuFp32 ? CreateOnnx(body, section, name) : null;
            if (withOnnx && !onCpuFp32)
                section.Notes.Add($"ONNX Runtime is compared on CPU float32 only; {options.Device}/{options.DType} rows are the host alone.");

            int[] batches = [1, 8, .. options.ExtraBatches];
            foreach (var b in batches.Distinct())
            {
                var batch = PaddedBatch.Create(Synthetic(b, SequenceLength, body.Config.VocabSize, seed: b), body.Tokenizer.PadTokenId);
                var contenders = new List<Contender> { new("host", () => HostPass(body, batch)) };
                if (plain is not null) contenders.Add(new Contender("host, weights not prepacked", () => HostPass(plain, batch)));
                if (sdpa is not null) contenders.Add(new Contender("host, SDPA attention", () => HostPass(sdpa, batch)));
                if (onnx is not null) contenders.Add(new Contender("onnxruntime", () => onnx.Infer(batch)));
                // A GPU pass takes milliseconds: more calls per block keep the launch/sync overhead out of the figure.
                // On the CPU: more, shorter rounds (about half a second for MiniLM, one pass of BERT-base at 8×128), since
                // the ratio is taken round by round.
                var calls = body.Device.type == TorchSharp.DeviceType.CUDA ? Math.Max(8, 2048 / b) : Math.Max(1, (name == "base" ? 1 : 4) * 8 / b);
                var stats = Measure.RoundRobin(contenders, _warmup, _rounds, options.Quick ? Math.Max(1, calls / 2) : calls);
                AddRows(section, name, $"{b}×{SequenceLength}", stats, b, b * SequenceLength, ["host", "host, weights not prepacked", "host, SDPA attention"]);
            }

            if (sentences is not null) RunMix(section, name, body, sdpa, onnx, sentences);
            if (options.DType != "float32" && options.Device == "cpu") RunPrecision(section, name, folder, body);
        }
        section.Notes.Add("Each engine runs in alternating blocks (warm-up, then rounds of one block per engine, 200 ms apart so the idle thread pool stops spinning, each round starting with the next engine); a sample is one block's mean, the time is the median over rounds and spread is (max − min) ÷ median. The machine is shared, so absolute times are noisy; 'ORT time ÷ host time' is the median over rounds of the two engines' ratio within a round, which cancels the machine's drift between rounds.");
        return section;
    }

    /// <summary>What the scheduler does per pass: tensors in, one forward without autograd, outputs released.</summary>
    internal static void HostPass(BertBody body, PaddedBatch batch)
    {
        using var output = body.ForwardSkippingPadding(batch);
        if (body.Device.type == TorchSharp.DeviceType.CUDA) cuda.synchronize();
    }

    private OnnxBody CreateOnnx(BertBody body, Section section, string name)
    {
        var model = BertOnnxExporter.Export(body.Model);
        var onnx = new OnnxBody(model, options.Threads, spinning: !ThreadPolicy.PassiveWaiting);
        var check = PaddedBatch.Create(Synthetic(2, 24, body.Config.VocabSize, seed: 7, shortenSecond: 9), body.Tokenizer.PadTokenId);
        var diff = OnnxParity.MaxDifference(body, onnx, check);
        section.Notes.Add($"{BenchModels.Describe(name)}: ONNX graph written from the loaded weights ({model.Length / 1e6:F1} MB); max |ORT − host| over real tokens of a padded batch = {diff:E2} (limit 1e-4).");
        if (diff > 1e-4) throw new InvalidOperationException($"ONNX Runtime and the host disagree by {diff:E2} on {name}: the export is wrong, timings would be meaningless");
        return onnx;
    }

    /// <summary>
    /// SST-2 sentences as they arrive: the host cuts them the way its scheduler does (length-sorted, token budget,
    /// padding only to each pass's longest row); ORT gets the same passes, and also what a plain ORT service does —
    /// batches of 8 in arrival order padded to their longest row.
    /// </summary>
    private void RunMix(Section section, string name, BertBody body, BertBody? sdpa, OnnxBody? onnx, IReadOnlyList<string> sentences)
    {
        var count = options.Quick ? 128 : name == "base" ? 256 : 512;
        var encodeOptions = new EncodeOptions { MaxLength = body.MaxSequenceLength };
        var sequences = sentences.Take(count).Select(s => body.Tokenizer.Encode(s, null, encodeOptions)[0]).ToList();
        var defaults = new BatchingSection();
        var planned = Plan(sequences, defaults.MaxBatchTokens ?? PassBudget.DefaultTokens(body.Device), defaults.MaxBatchRequests)
            .Select(rows => PaddedBatch.Create(rows, body.Tokenizer.PadTokenId)).ToList();
        var arrival = sequences.Chunk(8).Select(c => PaddedBatch.Create(c, body.Tokenizer.PadTokenId)).ToList();

        var contenders = new List<Contender>
        {
            new("host", () => planned.ForEach(b => HostPass(body, b))),
            new("host, arrival-order batches of 8", () => arrival.ForEach(b => HostPass(body, b))),
            // The same passes computing padded tokens too: what skipping them is worth.
            new("host, padded pass", () => planned.ForEach(b => { using var o = body.Forward(b); })),
        };
        if (sdpa is not null) contenders.Add(new Contender("host, SDPA attention", () => planned.ForEach(b => HostPass(sdpa, b))));
        if (onnx is not null)
        {
            contenders.Add(new Contender("onnxruntime, same batches", () => planned.ForEach(onnx.Infer)));
            contenders.Add(new Contender("onnxruntime, arrival-order batches of 8", () => arrival.ForEach(onnx.Infer)));
        }
        var stats = Measure.RoundRobin(contenders, warmup: 1, rounds: options.Quick ? 2 : 3, callsPerBlock: 1);
        var tokens = sequences.Sum(s => s.Length);
        var padded = planned.Sum(b => b.BatchSize * b.SequenceLength);
        var paddedArrival = arrival.Sum(b => b.BatchSize * b.SequenceLength);
        AddRows(section, name, $"SST-2 mix ({count} sentences, {tokens} tokens)", stats, count, tokens, ["host", "host, arrival-order batches of 8", "host, padded pass", "host, SDPA attention"],
            perBatchDivisor: null);
        section.Notes.Add($"{BenchModels.Describe(name)} SST-2 mix: the scheduler's plan is {planned.Count} passes, {padded} padded tokens for {tokens} real ({(double)padded / tokens:F2}×); arrival-order batches of 8 pad to {paddedArrival} ({(double)paddedArrival / tokens:F2}×). 'ms per batch' is the whole mix.");
    }

    private void RunPrecision(Section section, string name, string folder, BertBody body)
    {
        // float32 as it is served (prepacked weights), so the ratio is what switching the dtype gains.
        using var fp32 = BertBody.Load(folder, new BodyOptions { Device = "cpu", DType = "float32", PrepackWeights = true });
        var batch = PaddedBatch.Create(Synthetic(8, SequenceLength, body.Config.VocabSize, seed: 8), body.Tokenizer.PadTokenId);
        var stats = Measure.RoundRobin([new Contender("host float32", () => HostPass(fp32, batch)), new Contender($"host {options.DType}", () => HostPass(body, batch))],
            _warmup, _rounds, name == "base" ? 2 : 8);
        AddRows(section, name, $"8×{SequenceLength} precision", stats, 8, 8 * SequenceLength, []);
        using var scope = NewDisposeScope();
        using var a = fp32.Forward(batch);
        using var b = body.Forward(batch);
        var x = a.LastHiddenState;
        var y = b.LastHiddenState.to(ScalarType.Float32);
        var maxDiff = (x - y).abs().max().item<float>();
        var cosine = nn.functional.cosine_similarity(x.flatten(0, 1), y.flatten(0, 1), dim: 1).mean().item<float>();
        section.Notes.Add($"{BenchModels.Describe(name)} {options.DType} vs float32 (8×128, random weights): max |Δ| of last_hidden_state = {maxDiff:F4}, mean cosine per token = {cosine:F6}; {Report.F(Stats.PairedRatio(stats["host float32"], stats[$"host {options.DType}"]), 2)}× the float32 speed.");
    }

    private static void AddRows(Section section, string model, string caseName, Dictionary<string, Stats> stats, int sequences, int tokens,
        string[] compared, int? perBatchDivisor = 1)
    {
        foreach (var (engine, s) in stats)
        {
            string ratio = "";
            JsonNode? ratioJson = null;
            if (compared.Contains(engine))
            {
                var ratios = stats.Where(kv => kv.Key.StartsWith("onnxruntime", StringComparison.Ordinal))
                    .Select(r => (Engine: r.Key, Ratio: Stats.PairedRatio(r.Value, s))).ToList();
                ratio = string.Join("; ", ratios.Select(r => $"{Report.F(r.Ratio, 2)}× ({r.Engine.Replace("onnxruntime", "ORT")})"));
                ratioJson = new JsonObject(ratios.Select(r => KeyValuePair.Create(r.Engine, (JsonNode?)r.Ratio)));
            }
            section.Add(new JsonObject
            {
                ["model"] = model,
                ["case"] = caseName,
                ["engine"] = engine,
                ["seconds_median"] = s.Median,
                ["seconds_min"] = s.Min,
                ["seconds_max"] = s.Max,
                ["samples"] = s.Count,
                ["sequences_per_second"] = sequences / s.Median,
                ["tokens_per_second"] = tokens / s.Median,
                ["ort_time_over_host_time"] = ratioJson,
            },
                BenchModels.Describe(model).Split(' ')[0], caseName, engine, Report.F(s.Median * 1000, 1), $"{s.Spread * 100:F0}%",
                Report.F(sequences / s.Median, 1), Report.F(tokens / s.Median, 0), ratio);
        }
    }

    /// <summary>The serving planner's passes over single-head jobs, one job per sequence.</summary>
    internal static IEnumerable<IReadOnlyList<EncodedSequence>> Plan(IReadOnlyList<EncodedSequence> sequences, int maxTokens, int maxRequests)
    {
        var slot = new HeadSlot("bench", "bench", null, HeadStates.Ready, null, null, null);
        var jobs = sequences.Select(s => new InferenceJob([new HeadWork(slot, new HeadFeatures { Sequences = [s] })], CancellationToken.None)).ToList();
        return BatchPlanner.Plan(jobs, maxTokens, maxRequests).Select(p => p.Rows);
    }

    /// <summary>Random token ids between [CLS] and [SEP]; <paramref name="shortenSecond"/> makes row 1 shorter (padding).</summary>
    public static List<EncodedSequence> Synthetic(int batch, int length, int vocab, int seed, int? shortenSecond = null)
    {
        var random = new Random(seed);
        // bert-base-uncased's [CLS]/[SEP] and ordinary word pieces; small test vocabularies get their low ids.
        var (cls, sep, low) = vocab > 2000 ? (101, 102, 1000) : (2, 3, 5);
        return Enumerable.Range(0, batch).Select(r =>
        {
            var n = r == 1 && shortenSecond is { } s ? s : length;
            var ids = Enumerable.Range(0, n).Select(i => i == 0 ? cls : i == n - 1 ? sep : random.Next(low, vocab)).ToArray();
            return new EncodedSequence
            {
                InputIds = ids,
                Tokens = new string[n],
                TokenTypeIds = new int[n],
                Offsets = new (int, int)[n],
                WordIds = new int?[n],
                SequenceIds = new int?[n],
                SpecialTokensMask = new bool[n],
            };
        }).ToList();
    }
}
