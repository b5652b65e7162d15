using System.Text.Json;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;
using static TorchSharp.torch;

namespace Company.Heads.TextScore;

/// <summary>
/// Training of a text-score head: JSON Lines <c>{"text", "text_pair"?, "score"}</c>, mean squared error, and the metric.
/// The host runs the loop (berthost train, or a training job over HTTP) and saves the best checkpoint by the metric.
/// </summary>
public sealed class TextScoreTraining(TextScoreHead head) : IHeadTraining
{
    private static readonly string[] RecordFields = ["text", "text_pair", "score"];

    public IReadOnlyList<string> DataFormats { get; } = [TrainingRecords.Jsonl];

    public IEnumerable<HeadFeatures> ReadExamples(string path, TrainingDataOptions options)
    {
        TrainingRecords.Check(path, options);
        if (options.Format is { } format && format != TrainingRecords.Jsonl) throw TrainingRecords.UnknownFormat(format, DataFormats);
        return TrainingRecords.JsonlObjects(path, options, "{\"text\", \"text_pair\"?, \"score\"}", (record, line) => Example(path, line, record));
    }

    private HeadFeatures Example(string path, int line, JsonElement record)
    {
        if (!record.TryGetProperty("score", out var score) || score.ValueKind != JsonValueKind.Number)
            throw new TrainingDataException(path, line, "score must be a number");
        try
        {
            var (text, pair) = TextScoreHead.ReadText(record, RecordFields);
            return head.Example(text, pair, score.GetSingle());
        }
        catch (HeadInputException e)
        {
            throw new TrainingDataException(path, line, e.Message);
        }
    }

    public Tensor Loss(Tensor logits, HeadBatch batch)
    {
        using var target = Targets(batch, logits);
        return nn.functional.mse_loss(logits, target);
    }

    public IHeadMetric CreateMetric() => new TextScoreMetric();

    /// <summary>The items' target scores, one per row, on the logits' device and dtype.</summary>
    internal static Tensor Targets(HeadBatch batch, Tensor like) =>
        tensor(batch.Items.Select(i => i.State is float f ? f : throw new ArgumentException("a batch item has no target score")).ToArray())
            .to(like.device).to(like.dtype);
}

/// <summary>Mean squared error over the evaluation set; the host keeps the checkpoint with the highest <see cref="Primary"/>.</summary>
public sealed class TextScoreMetric : IHeadMetric
{
    private double _squares;
    private long _count;

    /// <summary>Higher is better for the host, so the primary metric is the negated error.</summary>
    public string Primary => "neg_mse";

    public void Update(Tensor logits, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        var errors = (logits.detach() - TextScoreTraining.Targets(batch, logits)).to(ScalarType.Float64, CPU);
        _squares += errors.square().sum().item<double>();
        _count += errors.numel();
    }

    public IReadOnlyDictionary<string, double> Compute()
    {
        var mse = _count == 0 ? 0 : _squares / _count;
        return new Dictionary<string, double> { ["mse"] = mse, ["neg_mse"] = -mse };
    }
}
