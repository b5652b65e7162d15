using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;
using BertHost.Abstractions.Text;
using static TorchSharp.torch;

namespace BertHost.Heads.Embedding;

/// <summary>
/// Input: a string or <c>{"text": "..."}</c>; output <c>{"embedding": [floats], "tokens": n}</c> (n: the tokens the body
/// read, special tokens included, which the OpenAI route reports as usage). Request parameters (all optional):
/// <c>dimensions</c> (fewer than the head's), <c>normalize</c>, <c>truncate</c> (false: an input longer than the head
/// accepts is refused; default: the deployment's <c>oversized</c> policy) and <c>truncation_direction</c>
/// (<c>right</c>, the default, keeps the start; <c>left</c> keeps the end).
/// </summary>
public sealed class EmbeddingHead : IHead
{
    private sealed class NoParameters() : nn.Module("embedding");

    /// <summary>What one input asked for: its output width and whether it is normalised.</summary>
    private sealed record ItemState(int Dimensions, bool Normalize);

    private readonly HeadContext _context;
    private readonly NoParameters _module = new();

    internal EmbeddingHead(HeadContext context, EmbeddingOptions options)
    {
        _context = context;
        Options = options;
        MaxLength = Math.Min(options.MaxLength ?? int.MaxValue, context.Body.MaxSequenceLength);
        Dimensions = options.Dimensions ?? context.Body.HiddenSize;
        Requirements = new BodyRequirements(PooledOutput: options.Pooling == PoolingMode.Pooler);
    }

    public string Name => _context.Name;
    public string Kind => EmbeddingKind.KindName;
    public IReadOnlyList<string> Labels => [];
    public nn.Module Module => _module;
    public BodyRequirements Requirements { get; }
    public string? TrainedOnFingerprint => null;
    public IHeadTraining? Training => null;
    public IReadOnlyCollection<string>? Parameters { get; } = ["dimensions", "normalize", "truncate", "truncation_direction"];

    public EmbeddingOptions Options { get; }

    /// <summary>Tokens per input, special tokens included.</summary>
    public int MaxLength { get; }

    /// <summary>The width of the vectors served (before a request asks for fewer).</summary>
    public int Dimensions { get; }

    public JsonObject Describe() => new()
    {
        ["options"] = Options.ToJson(),
        ["dimensions"] = Dimensions,
        ["max_length"] = MaxLength,
        ["parameters"] = new JsonArray(Parameters!.Select(p => (JsonNode)p).ToArray()),
    };

    public HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        var text = ReadInput(input);
        var (state, truncate, fromLeft) = ReadParameters(parameters);
        var full = _context.Tokenizer.Encode(text, null, new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate })[0];
        if (full.Length <= MaxLength) return new HeadFeatures { Sequences = [full], State = state };
        if (!(truncate ?? _context.TruncateOversized))
            throw truncate is null
                ? HeadInput.Oversized("text", full.Length, MaxLength, "truncating")
                : new HeadInputException("text", $"the input is {full.Length} tokens; this head accepts at most {MaxLength} (truncate is false)");
        var kept = fromLeft ? KeepEnd(full, MaxLength)
            : _context.Tokenizer.Encode(text, null, new EncodeOptions { MaxLength = MaxLength, Truncation = TruncationStrategy.LongestFirst })[0];
        return new HeadFeatures { Sequences = [kept], State = state };
    }

    /// <summary>[CLS], the last <c>maxLength - 2</c> tokens of the text, [SEP]: truncation from the left (TEI's <c>Left</c>).</summary>
    private static EncodedSequence KeepEnd(EncodedSequence s, int maxLength)
    {
        var index = new int[maxLength];
        index[0] = 0;
        var from = s.Length - 1 - (maxLength - 2);
        for (var i = 1; i < maxLength - 1; i++) index[i] = from + i - 1;
        index[^1] = s.Length - 1;
        T[] Pick<T>(T[] values) => index.Select(i => values[i]).ToArray();
        return new EncodedSequence
        {
            InputIds = Pick(s.InputIds),
            Tokens = Pick(s.Tokens),
            TokenTypeIds = Pick(s.TokenTypeIds),
            Offsets = Pick(s.Offsets),
            WordIds = Pick(s.WordIds),
            SequenceIds = Pick(s.SequenceIds),
            SpecialTokensMask = Pick(s.SpecialTokensMask),
        };
    }

    private static string ReadInput(JsonElement input)
    {
        var fields = HeadInput.Fields(input, ["text"], "a string or {\"text\": \"...\"}", "an embedding input has text", bareString: "text");
        return HeadInput.Required(fields, "text", "text is missing: send {\"text\": \"...\"} or a string");
    }

    private (ItemState State, bool? Truncate, bool FromLeft) ReadParameters(JsonElement parameters)
    {
        var dims = Dimensions;
        var normalize = Options.Normalize;
        bool? truncate = null;
        var fromLeft = false;
        if (parameters.ValueKind != JsonValueKind.Object) return (new ItemState(dims, normalize), truncate, fromLeft);
        static Exception Bad(string field, string message) => new HeadInputException(field, message);
        foreach (var p in parameters.EnumerateObject())
        {
            if (p.Value.ValueKind == JsonValueKind.Null) continue;
            var field = "parameters." + p.Name;
            switch (p.Name)
            {
                case "dimensions":
                    dims = HeadOptions.Int(field, p.Value, 1, m => Bad(field, m));
                    if (dims > Dimensions) throw Bad(field, $"dimensions must be at most {Dimensions} (this head's width), got {dims}");
                    break;
                case "normalize":
                    normalize = HeadOptions.Bool(field, p.Value, m => Bad(field, m));
                    break;
                case "truncate":
                    truncate = HeadOptions.Bool(field, p.Value, m => Bad(field, m));
                    break;
                case "truncation_direction":
                    fromLeft = HeadOptions.String(field, p.Value, m => Bad(field, m)).ToLowerInvariant() switch
                    {
                        "right" => false,
                        "left" => true,
                        var other => throw Bad(field, $"truncation_direction '{other}' is not one of left, right"),
                    };
                    break;
            }
        }
        return (new ItemState(dims, normalize), truncate, fromLeft);
    }

    /// <summary>[RowCount, hidden]: the pooled vectors (cut and normalised per input in <see cref="Decode"/>).</summary>
    public Tensor Forward(BodyOutput body, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        var pooled = Pooling.Pool(body, Options.Pooling);
        if (pooled.shape[0] != batch.RowCount)
            throw new ArgumentException($"the body output has {pooled.shape[0]} rows but the batch has {batch.RowCount}");
        return pooled.MoveToOuterDisposeScope();
    }

    public IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch)
    {
        float[] values;
        using (var cpu = logits.detach().to(ScalarType.Float32, CPU).contiguous()) values = cpu.data<float>().ToArray();
        var width = (int)logits.shape[1];
        var results = new List<JsonNode>(batch.Items.Count);
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var state = batch.Items[i].State as ItemState ?? new ItemState(Dimensions, Options.Normalize);
            var vector = Finish(values.AsSpan(batch.RowStarts[i] * width, width), state.Dimensions, state.Normalize);
            results.Add(new JsonObject
            {
                ["embedding"] = new JsonArray(vector.Select(v => (JsonNode)v).ToArray()),
                ["tokens"] = batch.Items[i].Sequences[0].Length,
            });
        }
        return results;
    }

    /// <summary>
    /// The first <paramref name="dimensions"/> values, divided by their L2 norm when <paramref name="normalize"/>
    /// (sentence-transformers' Normalize: <c>torch.nn.functional.normalize</c>, eps 1e-12): truncating a normalised
    /// vector and normalising again is the Matryoshka recipe.
    /// </summary>
    public static float[] Finish(ReadOnlySpan<float> pooled, int dimensions, bool normalize)
    {
        var vector = pooled[..dimensions].ToArray();
        if (!normalize) return vector;
        double sum = 0;
        foreach (var v in vector) sum += (double)v * v;
        var norm = Math.Max(Math.Sqrt(sum), 1e-12);
        for (var j = 0; j < vector.Length; j++) vector[j] = (float)(vector[j] / norm);
        return vector;
    }

    public void Save(string folder, HeadSaveInfo info) =>
        throw new NotSupportedException("an embedding head has no weights to save");

    public void Dispose() => _module.Dispose();
}
