using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;
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
public sealed class MultipleChoiceHead : TaskHead<MultipleChoiceOptions, MultipleChoiceModule>
{
    private static readonly string[] InputFields = ["context", "choices", "question"];

    private readonly double _dropout;

    internal MultipleChoiceHead(HeadContext context, MultipleChoiceOptions options, double dropout, MultipleChoiceModule module, WeightsOrigin origin)
        : base(context, MultipleChoiceKind.KindName, options, module, origin, options.MaxLength)
    {
        _dropout = dropout;
        Requirements = new BodyRequirements(PooledOutput: options.Pooling == PoolingMode.Pooler);
        Training = new MultipleChoiceTraining(this);
    }

    /// <summary>The request parameters Encode reads (none); the host refuses others.</summary>
    public override IReadOnlyCollection<string>? Parameters { get; } = [];

    protected override JsonObject OptionsJson() => Options.ToJson(_dropout);

    // Choices come with each input: there are no labels to list.
    protected override bool DescribesLabels => false;

    protected override void DescribeMore(JsonObject description)
    {
        description["max_choices"] = Options.MaxChoices;
        description["input"] = "{\"context\": \"...\", \"choices\": [\"...\", ...], \"question\": \"...\"?}";
    }

    public override HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        HeadInput.CheckParameters(parameters);
        var item = ReadInput(input, allowed: InputFields);
        return EncodeItem(item.Context, item.Question, item.Choices, label: null, source: null);
    }

    /// <summary>The parts of one input (also used by the JSONL reader).</summary>
    internal readonly record struct Item(string Context, string? Question, IReadOnlyList<string> Choices);

    /// <summary>Validates an input object; every problem is a <see cref="HeadInputException"/> naming the field.</summary>
    internal Item ReadInput(JsonElement input, IReadOnlyCollection<string> allowed)
    {
        var fields = HeadInput.Fields(input, allowed, "an object {\"context\": \"...\", \"choices\": [\"...\", ...], \"question\"?: \"...\"}",
            "a multiple-choice input has context, choices and optionally question");
        var context = HeadInput.Required(fields, "context", "context is missing: send {\"context\": \"...\", \"choices\": [\"...\", \"...\"]}");
        var question = HeadInput.Optional(fields, "question");
        var choices = fields.TryGetValue("choices", out var c)
            ? HeadInput.Texts("choices", c, "a list of strings")
            : throw new HeadInputException("choices", "choices is missing: send a list of at least 2 strings");
        if (choices.Count < 2) throw new HeadInputException("choices", $"choices must hold at least 2 choices, got {choices.Count}");
        if (choices.Count > Options.MaxChoices)
            throw new HeadInputException("choices", $"choices holds {choices.Count} choices; this head accepts at most {Options.MaxChoices} (options.max_choices)");
        return new Item(context, question, choices);
    }

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
            if (!Context.TruncateOversized)
            {
                var full = Context.Tokenizer.Encode(context, second, new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate })[0];
                if (full.Length > MaxLength)
                    throw new HeadInputException(field,
                        $"context and {field} are {full.Length} tokens; this head accepts at most {MaxLength} (the deployment refuses oversized inputs instead of truncating)");
            }
            try
            {
                sequences[i] = Context.Tokenizer.Encode(context, second, options)[0];
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
    public override Tensor Forward(BodyOutput body, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        var pooled = Options.Pooling == PoolingMode.Attention
            ? Module.AttentionPool(body.LastHiddenState, body.AttentionMask)
            : Pooling.Pool(body, Options.Pooling);
        if (pooled.shape[0] != batch.RowCount)
            throw new ArgumentException($"the body output has {pooled.shape[0]} rows but the batch has {batch.RowCount}");
        return Module.call(pooled).MoveToOuterDisposeScope();
    }

    public override IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch)
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
}
