using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using static TorchSharp.torch;

namespace BertHost.Heads.MultipleChoice;

/// <summary>
/// A multiple-choice head. Input <c>{"context": "...", "choices": ["...", ...], "question": "..."?}</c>; every choice
/// becomes one sequence pair <c>[CLS] context [SEP] second [SEP]</c> where second = <c>question + " " + choice</c> when a
/// question is given, else the choice (the SWAG recipe: sent1 is the context, sent2 is prepended to each ending). All
/// choices of an input are rows of the same body pass. Output
/// <c>{"choice": index, "label": choice text, "scores": [logit per choice], "probabilities": [softmax over the choices]}</c>.
/// </summary>
public sealed class MultipleChoiceHead : IHead
{
    private static readonly string[] InputFields = ["context", "choices", "question"];

    private readonly HeadContext _context;
    private readonly MultipleChoiceModule _module;
    private readonly double _dropout;
    private readonly string _weightsKind;

    internal MultipleChoiceHead(HeadContext context, MultipleChoiceOptions options, double dropout, MultipleChoiceModule module,
        string weightsKind, string? trainedOn)
    {
        _context = context;
        Options = options;
        _dropout = dropout;
        _module = module;
        _weightsKind = weightsKind;
        TrainedOnFingerprint = trainedOn;
        MaxLength = Math.Min(options.MaxLength ?? int.MaxValue, context.Body.MaxSequenceLength);
        Requirements = new BodyRequirements(PooledOutput: options.Pooling == PoolingMode.Pooler);
        Training = new MultipleChoiceTraining(this);
    }

    public string Name => _context.Name;
    public string Kind => MultipleChoiceKind.KindName;
    public IReadOnlyList<string> Labels { get; } = [];
    public nn.Module Module => _module;
    public BodyRequirements Requirements { get; }
    public string? TrainedOnFingerprint { get; private set; }
    public IHeadTraining? Training { get; }

    public MultipleChoiceOptions Options { get; }

    /// <summary>Tokens per choice sequence, special tokens included.</summary>
    public int MaxLength { get; }

    /// <summary>The request parameters Encode reads; the host refuses others.</summary>
    public IReadOnlyCollection<string>? Parameters { get; } = [];

    public JsonObject Describe() => new()
    {
        ["options"] = Options.ToJson(_dropout),
        ["max_length"] = MaxLength,
        ["max_choices"] = Options.MaxChoices,
        ["weights"] = _weightsKind,
        ["trained_on"] = TrainedOnFingerprint,
        ["stale"] = TrainedOnFingerprint is not null && TrainedOnFingerprint != _context.Body.Fingerprint,
        ["input"] = "{\"context\": \"...\", \"choices\": [\"...\", ...], \"question\": \"...\"?}",
    };

    public HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        if (parameters.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.Object))
            throw new HeadInputException("parameters", $"parameters must be an object, got {HeadOptions.Describe(parameters)}");
        var item = ReadInput(input, allowed: InputFields);
        return EncodeItem(item.Context, item.Question, item.Choices, label: null, source: null);
    }

    /// <summary>The parts of one input (also used by the JSONL reader).</summary>
    internal readonly record struct Item(string Context, string? Question, IReadOnlyList<string> Choices);

    /// <summary>Validates an input object; every problem is a <see cref="HeadInputException"/> naming the field.</summary>
    internal Item ReadInput(JsonElement input, IReadOnlyCollection<string> allowed)
    {
        if (input.ValueKind != JsonValueKind.Object)
            throw new HeadInputException("context",
                $"the input must be an object {{\"context\": \"...\", \"choices\": [\"...\", ...], \"question\"?: \"...\"}}, got {HeadOptions.Describe(input)}");
        string? context = null, question = null;
        List<string>? choices = null;
        var sawChoices = false;
        foreach (var p in input.EnumerateObject())
        {
            switch (p.Name)
            {
                case "context":
                    context = p.Value.ValueKind == JsonValueKind.String
                        ? NonEmpty("context", p.Value.GetString()!)
                        : throw new HeadInputException("context", $"context must be a string, got {HeadOptions.Describe(p.Value)}");
                    break;
                case "question":
                    if (p.Value.ValueKind == JsonValueKind.Null) break;
                    question = p.Value.ValueKind == JsonValueKind.String
                        ? NonEmpty("question", p.Value.GetString()!)
                        : throw new HeadInputException("question", $"question must be a string, got {HeadOptions.Describe(p.Value)}");
                    break;
                case "choices":
                    sawChoices = true;
                    if (p.Value.ValueKind != JsonValueKind.Array)
                        throw new HeadInputException("choices", $"choices must be a list of strings, got {HeadOptions.Describe(p.Value)}");
                    choices = [];
                    foreach (var c in p.Value.EnumerateArray())
                    {
                        var field = $"choices[{choices.Count}]";
                        choices.Add(c.ValueKind == JsonValueKind.String
                            ? NonEmpty(field, c.GetString()!)
                            : throw new HeadInputException(field, $"{field} must be a string, got {HeadOptions.Describe(c)}"));
                    }
                    break;
                default:
                    if (!allowed.Contains(p.Name))
                        throw new HeadInputException(p.Name, $"unknown input field '{p.Name}' (a multiple-choice input has context, choices and optionally question)");
                    break;
            }
        }
        if (context is null) throw new HeadInputException("context", "context is missing: send {\"context\": \"...\", \"choices\": [\"...\", \"...\"]}");
        if (!sawChoices || choices is null) throw new HeadInputException("choices", "choices is missing: send a list of at least 2 strings");
        if (choices.Count < 2) throw new HeadInputException("choices", $"choices must hold at least 2 choices, got {choices.Count}");
        if (choices.Count > Options.MaxChoices)
            throw new HeadInputException("choices", $"choices holds {choices.Count} choices; this head accepts at most {Options.MaxChoices} (options.max_choices)");
        return new Item(context, question, choices);
    }

    private static string NonEmpty(string field, string value) =>
        string.IsNullOrWhiteSpace(value) ? throw new HeadInputException(field, $"{field} is empty") : value;

    /// <summary>The second sequence of a choice: <c>question + " " + choice</c>, or the choice alone.</summary>
    public static string SecondSequence(string? question, string choice) => question is null ? choice : question + " " + choice;

    /// <summary>One sequence pair per choice; oversized pairs are truncated (or refused, as the deployment says).</summary>
    internal HeadFeatures EncodeItem(string context, string? question, IReadOnlyList<string> choices, int? label, string? source)
    {
        var sequences = new EncodedSequence[choices.Count];
        var options = new EncodeOptions { MaxLength = MaxLength, Truncation = Options.Truncation };
        for (var i = 0; i < choices.Count; i++)
        {
            var second = SecondSequence(question, choices[i]);
            var field = $"choices[{i}]";
            if (!_context.TruncateOversized)
            {
                var full = _context.Tokenizer.Encode(context, second, new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate })[0];
                if (full.Length > MaxLength)
                    throw new HeadInputException(field,
                        $"context and {field} are {full.Length} tokens; this head accepts at most {MaxLength} (the deployment refuses oversized inputs instead of truncating)");
            }
            try
            {
                sequences[i] = _context.Tokenizer.Encode(context, second, options)[0];
            }
            catch (ArgumentException e)
            {
                // only_first cannot cut enough when the choice alone is too long
                throw new HeadInputException(field, $"context and {field} cannot be truncated to {MaxLength} tokens: {e.Message}");
            }
        }
        return new HeadFeatures { Sequences = sequences, State = new MultipleChoiceState { Choices = choices, Label = label, Source = source } };
    }

    /// <summary>One score per row (choice) of the batch: [RowCount].</summary>
    public Tensor Forward(BodyOutput body, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        var pooled = Options.Pooling == PoolingMode.Attention
            ? _module.AttentionPool(body.LastHiddenState, body.AttentionMask)
            : Pooling.Pool(body, Options.Pooling);
        if (pooled.shape[0] != batch.RowCount)
            throw new ArgumentException($"the body output has {pooled.shape[0]} rows but the batch has {batch.RowCount}");
        return _module.call(pooled).MoveToOuterDisposeScope();
    }

    public IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch)
    {
        var values = RowScores(logits, batch);
        var results = new List<JsonNode>(batch.Items.Count);
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var n = batch.RowCountOf(i);
            var scores = values.AsSpan(batch.RowStarts[i], n);
            var probabilities = HeadMath.Softmax(scores);
            var best = HeadMath.ArgMax(scores);
            var result = new JsonObject { ["choice"] = best };
            if (batch.Items[i].State is MultipleChoiceState state && best < state.Choices.Count) result["label"] = state.Choices[best];
            result["scores"] = new JsonArray(scores.ToArray().Select(s => (JsonNode)(double)s).ToArray());
            result["probabilities"] = new JsonArray(probabilities.Select(p => (JsonNode)p).ToArray());
            results.Add(result);
        }
        return results;
    }

    /// <summary>The logits as one float per row, checked against the batch.</summary>
    internal static float[] RowScores(Tensor logits, HeadBatch batch)
    {
        float[] values;
        using (var cpu = logits.detach().to(ScalarType.Float32, CPU).contiguous()) values = cpu.data<float>().ToArray();
        if (values.Length != batch.RowCount)
            throw new ArgumentException($"logits have {values.Length} values, expected one per row ({batch.RowCount} rows)");
        return values;
    }

    public void Save(string folder, HeadSaveInfo info)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(info);
        HeadWeights.Save(_context, folder, _module, new HeadManifest(Kind, Labels, Options.ToJson(_dropout), info.BodyFingerprint, info.Metrics, DateTimeOffset.UtcNow));
        TrainedOnFingerprint = info.BodyFingerprint;
    }

    public void Dispose() => _module.Dispose();
}
