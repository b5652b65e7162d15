using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;
using BertHost.Abstractions.Text;
using static TorchSharp.torch;

namespace BertHost.Heads.TokenClassification;

/// <summary>
/// A token-classification (NER) head, like transformers' token-classification pipeline over a
/// BertForTokenClassification. Input <c>{"text": "..."}</c>, <c>{"tokens": ["EU", "rejects", ...]}</c> or a bare
/// string; request parameters <c>aggregation</c> (none | simple | first | average | max) and <c>ignore_labels</c>
/// (default ["O"]). Output: a list of <c>{entity, score, index, word, start, end}</c> (none) or
/// <c>{entity_group, score, word, start, end}</c> (the others), offsets in UTF-16 characters of the original text.
/// Inputs longer than one window are split into overlapping windows; every token is predicted once.
/// </summary>
public sealed class TokenClassificationHead : TaskHead<TokenClassificationOptions, TokenClassificationModule>
{
    private static readonly string[] InputFields = ["text", "tokens"];

    private readonly double _dropout;

    internal TokenClassificationHead(HeadContext context, TokenClassificationOptions options, IReadOnlyList<string> labels, double dropout,
        TokenClassificationModule module, WeightsOrigin origin)
        : base(context, TokenClassificationKind.KindName, options, module, origin, options.MaxLength, labels)
    {
        _dropout = dropout;
        CheckStride(options, MaxLength);
        var extra = options.Layers.Where(l => l != -1).ToList();
        Requirements = new BodyRequirements(HiddenLayers: extra.Count == 0 ? null : extra);
        Training = new TokenClassificationTraining(this);
    }

    /// <summary>Windows must move: the stride is below the text tokens of a window.</summary>
    internal static void CheckStride(TokenClassificationOptions options, int maxLength)
    {
        if (options.Stride >= maxLength - 2)
            throw new HeadConfigurationException("options.stride",
                $"stride {options.Stride} must be smaller than the {maxLength - 2} text tokens of a window (max_length {maxLength} minus [CLS] and [SEP])");
    }

    /// <summary>The request parameters Encode reads; the host refuses others.</summary>
    public override IReadOnlyCollection<string>? Parameters { get; } = ["aggregation", "ignore_labels"];

    protected override JsonObject OptionsJson() => Options.ToJson(_dropout);

    protected override void DescribeMore(JsonObject description) => description["stride"] = Options.Stride;

    public override HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        var (text, words) = ReadInput(input);
        var (aggregation, ignore) = ReadParameters(parameters);
        var (windows, state) = words is null ? EncodeText(text!) : EncodeWords(words);
        if (!Context.TruncateOversized && windows.Count > 1)
            throw HeadInput.Oversized(words is null ? "text" : "tokens", state.Windows.Count + 2, MaxLength, "splitting them into windows");
        return new HeadFeatures { Sequences = windows, State = new TokenClassificationState
        {
            Text = state.Text, WordStarts = state.WordStarts, Windows = state.Windows, Aggregation = aggregation, IgnoreLabels = ignore,
        } };
    }

    private EncodeOptions WindowOptions => new()
    {
        MaxLength = MaxLength, Truncation = TruncationStrategy.LongestFirst, ReturnOverflowing = true, Stride = Options.Stride,
    };

    private int Step => MaxLength - 2 - Options.Stride;

    internal (IReadOnlyList<EncodedSequence> Windows, TokenClassificationState State) EncodeText(string text)
    {
        var windows = Context.Tokenizer.Encode(text, null, WindowOptions);
        return (windows, new TokenClassificationState { Text = text, Windows = TokenWindows.Of(windows, Step) });
    }

    /// <summary>Pre-split words: the text is the words joined by single spaces (as the pipeline's is_split_into_words), offsets point into it.</summary>
    internal (IReadOnlyList<EncodedSequence> Windows, TokenClassificationState State) EncodeWords(IReadOnlyList<string> words)
    {
        var windows = Context.Tokenizer.EncodeWords(words, WindowOptions);
        var starts = new int[words.Count];
        for (var i = 1; i < words.Count; i++) starts[i] = starts[i - 1] + words[i - 1].Length + 1;
        return (windows, new TokenClassificationState { Text = string.Join(' ', words), WordStarts = starts, Windows = TokenWindows.Of(windows, Step) });
    }

    private static (string? Text, IReadOnlyList<string>? Words) ReadInput(JsonElement input)
    {
        var fields = HeadInput.Fields(input, InputFields, "a string, or an object with text or tokens",
            "a token-classification input has text, or tokens: a list of words", bareString: "text");
        var text = fields.TryGetValue("text", out var x) ? HeadInput.Text("text", x) : null;
        var words = fields.TryGetValue("tokens", out var t) ? ReadWords(t) : null;
        if (text is not null && words is not null) throw new HeadInputException("tokens", "give either text or tokens, not both");
        if (text is null && words is null) throw new HeadInputException("text", "text is missing: send {\"text\": \"...\"}, {\"tokens\": [\"...\", ...]} or a string");
        return (text, words);
    }

    private static List<string> ReadWords(JsonElement v)
    {
        var words = HeadInput.Texts("tokens", v, "a list of words", blankAllowed: true);
        return words.Count == 0 ? throw new HeadInputException("tokens", "tokens is empty") : words;
    }

    private static (AggregationStrategy, IReadOnlySet<string>) ReadParameters(JsonElement parameters)
    {
        var aggregation = AggregationStrategy.None;
        IReadOnlySet<string> ignore = new HashSet<string>(StringComparer.Ordinal) { "O" };
        if (!HeadInput.CheckParameters(parameters)) return (aggregation, ignore);
        if (parameters.TryGetProperty("aggregation", out var a) && a.ValueKind != JsonValueKind.Null)
        {
            if (a.ValueKind != JsonValueKind.String)
                throw new HeadInputException("parameters.aggregation", $"aggregation must be a string, got {HeadOptions.Describe(a)}");
            try
            {
                aggregation = EntityAggregator.Parse(a.GetString()!);
            }
            catch (ArgumentException e)
            {
                throw new HeadInputException("parameters.aggregation", e.Message);
            }
        }
        if (parameters.TryGetProperty("ignore_labels", out var i) && i.ValueKind != JsonValueKind.Null)
        {
            if (i.ValueKind != JsonValueKind.Array || i.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
                throw new HeadInputException("parameters.ignore_labels", $"ignore_labels must be a list of label names, got {HeadOptions.Describe(i)}");
            ignore = i.EnumerateArray().Select(e => e.GetString()!).ToHashSet(StringComparer.Ordinal);
        }
        return (aggregation, ignore);
    }

    public override Tensor Forward(BodyOutput body, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        var features = Options.Layers.Count == 1
            ? Hidden(body, Options.Layers[0])
            : cat(Options.Layers.Select(l => Hidden(body, l)).ToArray(), -1);
        if (features.shape[0] != batch.RowCount)
            throw new ArgumentException($"the body output has {features.shape[0]} rows but the batch has {batch.RowCount}");
        return Module.call(features).MoveToOuterDisposeScope();
    }

    private static Tensor Hidden(BodyOutput body, int layer) => layer == -1 ? body.LastHiddenState : body.HiddenState(layer);

    public override IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch)
    {
        if (logits.dim() != 3 || logits.shape[0] != batch.RowCount || logits.shape[2] != Labels.Count)
            throw new ArgumentException($"logits are [{string.Join(",", logits.shape)}], expected [{batch.RowCount}, tokens, {Labels.Count}]");
        int length = (int)logits.shape[1], n = Labels.Count;
        float[] values;
        using (var cpu = logits.detach().to(ScalarType.Float32, CPU).contiguous()) values = cpu.data<float>().ToArray();

        var results = new List<JsonNode>(batch.Items.Count);
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var item = batch.Items[i];
            var state = item.State as TokenClassificationState ?? throw new ArgumentException($"batch item {i} was not encoded by this head");
            var pre = new List<PreEntity>(state.Windows.Count);
            foreach (var (w, p) in state.Windows.Owners)
            {
                var seq = item.Sequences[w];
                var row = batch.RowStarts[i] + w;
                if (p >= length) throw new ArgumentException($"logits have {length} positions, window {w} of item {i} has {seq.Length}");
                var scores = HeadMath.Softmax(values.AsSpan((row * length + p) * n, n));
                var (start, end) = seq.Offsets[p];
                if (state.WordStarts is { } ws && seq.WordIds[p] is { } word)
                {
                    start += ws[word];
                    end += ws[word];
                }
                var token = seq.Tokens[p];
                var reference = state.Text[start..end];
                // The pipeline's word test for tokenizers with a continuing-subword prefix: a "##" piece is longer than its span.
                var isSubword = token.Length != reference.Length;
                if (seq.InputIds[p] == Context.Tokenizer.UnkTokenId)
                {
                    token = reference;
                    isSubword = false;
                }
                pre.Add(new PreEntity(token, scores, start, end, p, isSubword, w));
            }
            results.Add(EntityAggregator.Run(pre, state.Aggregation, Labels, state.IgnoreLabels, state.Text, item.Sequences.Count > 1));
        }
        return results;
    }
}
