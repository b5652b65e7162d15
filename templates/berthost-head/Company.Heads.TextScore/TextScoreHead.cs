using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;
using static TorchSharp.torch;

namespace Company.Heads.TextScore;

/// <summary>
/// Input <c>{"text": "...", "text_pair": "..."?}</c> or a bare string; output <c>{"score": number}</c>. The
/// <see cref="TaskHead{TOptions, TModule}"/> base holds the rest of <see cref="IHead"/> (Describe, Save, Dispose...),
/// and the module is the SDK's <see cref="LinearHead"/> (dropout + one Linear layer).
/// </summary>
public sealed class TextScoreHead : TaskHead<TextScoreOptions, LinearHead>
{
    private static readonly string[] InputFields = ["text", "text_pair"];

    internal TextScoreHead(HeadContext context, TextScoreOptions options, LinearHead module, WeightsOrigin origin)
        : base(context, TextScoreKind.KindName, options, module, origin, options.MaxLength)
    {
        Requirements = new BodyRequirements(PooledOutput: options.Pooling == PoolingMode.Pooler);
        Training = new TextScoreTraining(this);
    }

    /// <summary>No request parameters: the host refuses any with a 400.</summary>
    public override IReadOnlyCollection<string>? Parameters { get; } = [];

    protected override JsonObject OptionsJson() => Options.ToJson();

    protected override bool DescribesLabels => false;

    public override HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        HeadInput.CheckParameters(parameters);
        var (text, pair) = ReadText(input);
        return new HeadFeatures { Sequences = [EncodeOrRefuse(text, pair, pair is null ? "text" : "text_pair")] };
    }

    /// <summary>The text (and pair) of an input; a bad one is a <see cref="HeadInputException"/> naming the field.</summary>
    public static (string Text, string? Pair) ReadText(JsonElement input, IReadOnlyCollection<string>? allowed = null)
    {
        var fields = HeadInput.Fields(input, allowed ?? InputFields, "a string or an object with text (and optionally text_pair)",
            "a text-score input has text and optionally text_pair", bareString: "text");
        return (HeadInput.Required(fields, "text", "text is missing: send {\"text\": \"...\"} or a string"), HeadInput.Optional(fields, "text_pair"));
    }

    /// <summary>A training example: the input cut to the head's length, its target score as state.</summary>
    internal HeadFeatures Example(string text, string? pair, float target) =>
        new() { Sequences = [EncodeTruncated(text, pair)], State = target };

    /// <summary>One score per row: [RowCount].</summary>
    public override Tensor Forward(BodyOutput body, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        return Module.call(Pooling.Pool(body, Options.Pooling)).squeeze(-1).MoveToOuterDisposeScope();
    }

    public override IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch)
    {
        float[] scores;
        using (var cpu = logits.detach().to(ScalarType.Float32, CPU).contiguous()) scores = cpu.data<float>().ToArray();
        return batch.Items.Select((_, i) => (JsonNode)new JsonObject { ["score"] = (double)scores[batch.RowStarts[i]] }).ToList();
    }
}
