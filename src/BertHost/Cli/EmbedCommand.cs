using System.Buffers;
using BertHost.Abstractions;
using BertHost.Abstractions.Text;
using System.Text.Json;
using BertHost.Core.Bert;
using BertHost.Core.Text;
using BertHost.Core.Body;
using BertHost.Core.Checkpoints;

namespace BertHost.Cli;

/// <summary><c>berthost embed</c>: feature extraction with the body alone, like transformers' feature-extraction pipeline.</summary>
public sealed class EmbedCommand : ICommand
{
    public string Name => "embed";
    public string Summary => "Embed texts with a BERT model folder and print one JSON object per input";
    public string Usage => "--model DIR [--pooling none|cls|mean|max|pooler] [--pair TEXT] [--input FILE.jsonl] [TEXT ...]";

    public string Details => """
        Inputs: the TEXT arguments (each paired with --pair when given), then the lines of --input ('-' reads stdin).
        An input line is a JSON object {"text": "...", "text_pair": "..."} (text_pair optional) or a JSON string.
        Output, one line per input, in input order:
          {"text", "text_pair"?, "input_ids", "token_type_ids", "embedding"}
        where embedding is [tokens][hidden] for --pooling none (special tokens included) and [hidden] otherwise.
        Inputs longer than --max-length are truncated (a warning goes to stderr).

        example:
          berthost embed --model ../shared/models/my-bert --pooling mean "A first sentence." "Another one."
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("model", "Hugging Face model folder (config.json, vocab.txt, model.safetensors or pytorch_model.bin)", "DIR"),
        new("pooling", "none (default: one vector per token), cls, mean, max or pooler", "MODE"),
        new("pair", "second sequence paired with every TEXT argument (token_type_ids 1)", "TEXT"),
        new("input", "JSON Lines file of inputs, or '-' for stdin", "FILE"),
        new("normalize", "L2-normalise pooled embeddings"),
        new("device", "auto (default), cpu, cuda or cuda:N", "DEVICE"),
        new("dtype", "float32 (default), bfloat16 or float16", "DTYPE"),
        new("max-length", "truncate inputs to N tokens (default: the model's maximum)", "N"),
        new("truncation", "longest_first (default), only_first or only_second for pairs", "STRATEGY"),
        new("batch-size", "inputs per body pass at most (default 32)", "N"),
        new("max-batch-tokens", "padded tokens (inputs x longest) per body pass at most (default 1024 on a CPU, 16384 on a GPU)", "N"),
        new("quantize", "none (default) or dynamic_int8: int8 Linear layers with dynamic activation quantization (CPU, float32)", "MODE"),
        new("quantize-exclude", "comma-separated Linear names kept in float32 when quantizing (* wildcards), e.g. '*.output.dense'", "NAMES"),
        new("no-fast-paths", "run libtorch's Linear and SDPA only (the plain path the fast kernels are checked against)"),
    ];

    public async Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var model = args.Require("model");
        var pooling = ParsePooling(args.Get("pooling") ?? "none");
        var truncation = ParseTruncation(args.Get("truncation") ?? "longest_first");
        var maxLength = args.GetInt("max-length", min: 2);
        var batchSize = args.GetInt("batch-size", min: 1) ?? 32;
        var maxBatchTokens = args.GetInt("max-batch-tokens", min: 1);
        var normalize = args.Has("normalize");
        if (normalize && pooling == PoolingMode.None) throw new UsageException("--normalize applies to pooled embeddings; choose --pooling cls, mean, max or pooler");

        var inputs = new List<EmbedInput>();
        var pair = args.Get("pair");
        inputs.AddRange(args.Positionals.Select(t => new EmbedInput(t, pair)));
        if (args.Get("input") is { } inputPath) inputs.AddRange(await EmbedInputReader.ReadAsync(inputPath, context.In, cancellationToken));
        if (inputs.Count == 0) throw new UsageException("no input: give TEXT arguments or --input FILE");

        // The inputs are tokenized on the thread pool while this thread, which runs the passes, loads the weights.
        BertBody body;
        EncodedInputs encoded;
        try
        {
            var fast = !args.Has("no-fast-paths");
            var prepared = BertBody.Prepare(model, new BodyOptions
            {
                Device = args.Get("device") ?? "auto", DType = args.Get("dtype") ?? "float32", PrepackWeights = fast, CpuAttentionKernel = fast,
                Quantize = args.Get("quantize") ?? QuantizeModes.None,
                RefuseEmulatedPrecision = true,
                QuantizeExclude = (args.Get("quantize-exclude") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            });
            var tokenized = Task.Run(() => FeatureExtractor.Encode(prepared.Tokenizer, prepared.MaxSequenceLength, inputs, maxLength, truncation), cancellationToken);
            body = prepared.Load(); // a failure here is the one reported; the tokenizing task only touched managed memory
            try
            {
                encoded = tokenized.GetAwaiter().GetResult();
            }
            catch
            {
                body.Dispose();
                throw;
            }
        }
        catch (BodyLoadException e)
        {
            throw new CommandException(e.Message);
        }
        catch (ArgumentException e)
        {
            throw new CommandException(e.Message);
        }
        // Loading and tokenizing at once left the garbage collector's first generation touched (its budget follows the
        // CPU's cache size: tens of MB on this EPYC; DOTNET_GCgen0size=4MB removed the difference), and the first passes,
        // the longest, hold the largest activations: the process peaked with both, ~25 MB above loading and tokenizing
        // one after the other (415-433 MB vs 391-413 for 5,000 SST-2 sentences in int8; 394-413 with this collection,
        // which hands back what it frees and costs a few milliseconds).
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        using (body)
        {
            foreach (var fallback in body.FastPathFallbacks) await context.Error.WriteLineAsync($"berthost embed: note: {fallback}");
            IReadOnlyList<EmbedResult> results;
            try
            {
                results = new FeatureExtractor(body, pooling, batchSize, maxLength, truncation, maxBatchTokens).Embed(encoded);
            }
            catch (ArgumentException e)
            {
                throw new CommandException(e.Message);
            }
            await WriteAsync(results, normalize, context, cancellationToken);
        }
        return CliApp.ExitOk;
    }

    /// <summary>Lines formatted per block on every core, written in input order.</summary>
    private const int LinesPerBlock = 256;

    private static async Task WriteAsync(IReadOnlyList<EmbedResult> results, bool normalize, CommandContext context, CancellationToken cancellationToken)
    {
        // Shortest round-trip formatting of every float is most of the writing (5,000 SST-2 sentences: 1.9 million
        // numbers); blocks bound what is held formatted at once. Each line is UTF-8 in a buffer reused block after block,
        // written as bytes where the output is a stream (as berthost's stdout is): a string per line, encoded again by
        // the writer, left ~60 MB of garbage per 5,000 lines, and the write took 0.25-0.3 s instead of ~0.1 s.
        var lines = new ArrayBufferWriter<byte>[Math.Min(LinesPerBlock, results.Count)];
        var sink = context.Out as StreamWriter;
        if (sink is not null) await sink.FlushAsync(cancellationToken);
        // Flushed, not disposed: disposing it would close stdout under the writer.
        var bytes = sink is null ? null : new BufferedStream(sink.BaseStream, 1 << 16);
        for (var first = 0; first < results.Count; first += LinesPerBlock)
        {
            var count = Math.Min(LinesPerBlock, results.Count - first);
            for (var j = 0; j < count; j++)
                if (!results[first + j].Embedding.All(row => row.All(float.IsFinite)))
                    throw new CommandException($"input {first + j + 1}'s embedding holds NaN or infinity, which JSON cannot carry (the model's weights or activations overflow float32)");
            Parallel.For(0, count, new ParallelOptions { CancellationToken = cancellationToken }, j =>
            {
                var line = lines[j] ??= new ArrayBufferWriter<byte>(8192);
                line.ResetWrittenCount();
                WriteLine(line, results[first + j], normalize);
            });
            for (var j = 0; j < count; j++)
            {
                var r = results[first + j];
                if (r.Truncated) await context.Error.WriteLineAsync($"berthost embed: warning: input {first + j + 1} was truncated to {r.InputIds.Length} tokens");
                if (bytes is not null) await bytes.WriteAsync(lines[j].WrittenMemory, cancellationToken);
                else await context.Out.WriteAsync(System.Text.Encoding.UTF8.GetString(lines[j].WrittenSpan));
            }
        }
        if (bytes is not null) await bytes.FlushAsync(cancellationToken);
        await context.Out.FlushAsync(cancellationToken);
    }

    /// <summary>One JSON object and its newline, UTF-8.</summary>
    private static void WriteLine(ArrayBufferWriter<byte> buffer, EmbedResult r, bool normalize)
    {
        using (var json = new Utf8JsonWriter(buffer, JsonOutput.Writer))
        {
            json.WriteStartObject();
            json.WriteString("text", r.Input.Text);
            if (r.Input.TextPair is not null) json.WriteString("text_pair", r.Input.TextPair);
            WriteInts(json, "input_ids", r.InputIds);
            WriteInts(json, "token_type_ids", r.TokenTypeIds);
            json.WritePropertyName("embedding");
            if (r.Pooled && r.Embedding is [var vector])
                WriteFloats(json, normalize ? L2Normalize(vector) : vector);
            else
            {
                json.WriteStartArray();
                foreach (var row in r.Embedding) WriteFloats(json, row);
                json.WriteEndArray();
            }
            json.WriteEndObject();
        }
        buffer.Write("\n"u8);
    }

    private static void WriteInts(Utf8JsonWriter json, string name, int[] values)
    {
        json.WriteStartArray(name);
        foreach (var v in values) json.WriteNumberValue(v);
        json.WriteEndArray();
    }

    private static void WriteFloats(Utf8JsonWriter json, float[] values)
    {
        json.WriteStartArray();
        foreach (var v in values) json.WriteNumberValue(v);
        json.WriteEndArray();
    }

    private static float[] L2Normalize(float[] v)
    {
        var norm = Math.Sqrt(v.Sum(x => (double)x * x));
        return norm == 0 ? v : v.Select(x => (float)(x / norm)).ToArray();
    }

    private static PoolingMode ParsePooling(string value)
    {
        try
        {
            return Pooling.Parse(value);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--pooling: {e.Message}");
        }
    }

    private static TruncationStrategy ParseTruncation(string value) => value switch
    {
        "longest_first" => TruncationStrategy.LongestFirst,
        "only_first" => TruncationStrategy.OnlyFirst,
        "only_second" => TruncationStrategy.OnlySecond,
        _ => throw new UsageException($"--truncation must be longest_first, only_first or only_second, got '{value}'"),
    };
}
