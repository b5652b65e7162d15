using System.Text.Json.Nodes;
using BertHost.Benchmarks.Harness;
using BertHost.Core.Body;
using BertHost.Core.Text;

namespace BertHost.Benchmarks.Suites;

/// <summary>
/// The same 8,192 tokens (64 sequences of 128) run as passes of 512 to 8,192 tokens, float32 and int8: what the CPU
/// default of <see cref="PassBudget.CpuTokens"/> padded tokens per pass rests on. Not part of <c>all</c>.
/// </summary>
public sealed class PassSizeSuite(BenchOptions options)
{
    private static readonly int[] SequencesPerPass = [64, 32, 16, 8, 4];

    public Section Run()
    {
        var section = new Section("Tokens per pass: 64×128 tokens in passes of different sizes (CPU)", "model", "precision", "tokens per pass",
            "ms for all 8,192 tokens (median)", "spread", "÷ 1,024-token passes");
        foreach (var name in options.Models)
        foreach (var quantize in new[] { QuantizeModes.None, QuantizeModes.DynamicInt8 })
        {
            using var body = BertBody.Load(BenchModels.Ensure(name, options.WorkFolder), new BodyOptions { Device = "cpu", PrepackWeights = true, Quantize = quantize });
            var sequences = BodySuite.Synthetic(64, 128, body.Config.VocabSize, seed: 3);
            var contenders = SequencesPerPass.Select(n =>
            {
                var passes = sequences.Chunk(n).Select(c => PaddedBatch.Create(c, body.Tokenizer.PadTokenId)).ToList();
                return new Contender($"{n * 128}", () => passes.ForEach(p => BodySuite.HostPass(body, p)));
            }).ToList();
            var stats = Measure.RoundRobin(contenders, warmup: 1, rounds: options.Quick ? 3 : 6, callsPerBlock: 1);
            var reference = stats["1024"].Median;
            var precision = quantize == QuantizeModes.None ? "float32" : "int8";
            foreach (var c in contenders)
            {
                var s = stats[c.Name];
                section.Add(new JsonObject { ["model"] = name, ["precision"] = precision, ["tokens_per_pass"] = int.Parse(c.Name), ["ms"] = s.Median * 1000, ["spread"] = s.Spread },
                    BenchModels.Describe(name).Split(' ')[0], precision, c.Name, Report.F(s.Median * 1000, 0), $"{s.Spread * 100:F0}%", Report.F(s.Median / reference, 2));
            }
        }
        section.Notes.Add("Each row runs the same 64 sequences of 128 tokens through body.ForwardSkippingPadding in passes of that many tokens; rows of one model and precision are interleaved (round robin).");
        return section;
    }
}
