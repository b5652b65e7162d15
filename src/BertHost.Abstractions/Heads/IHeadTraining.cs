using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads;

/// <summary>How a head is trained: its data formats, its loss and its metric. The host runs the loop.</summary>
public interface IHeadTraining
{
    /// <summary>Names of the data formats <see cref="ReadExamples"/> understands (e.g. <c>glue-tsv</c>, <c>jsonl</c>, <c>conll</c>).</summary>
    IReadOnlyList<string> DataFormats { get; }

    /// <summary>
    /// Reads labelled examples, already encoded (labels in <see cref="HeadFeatures.State"/>). A malformed record throws
    /// <see cref="TrainingDataException"/> with file and line, unless <see cref="TrainingDataOptions.SkipMalformed"/>.
    /// </summary>
    IEnumerable<HeadFeatures> ReadExamples(string path, TrainingDataOptions options);

    /// <summary>Mean loss over the batch (a scalar tensor with gradient).</summary>
    Tensor Loss(Tensor logits, HeadBatch batch);

    /// <summary>A fresh accumulator of the head's metric.</summary>
    IHeadMetric CreateMetric();

    /// <summary>
    /// Called by the trainer once before a run with the training examples, for what the head derives from its training
    /// data (e.g. <c>class_weights: balanced</c>).
    /// </summary>
    void PrepareTraining(IReadOnlyList<HeadFeatures> train) { }
}

/// <summary>Options for reading training data.</summary>
public sealed record TrainingDataOptions
{
    /// <summary>Format name; null = decided from the file name and content.</summary>
    public string? Format { get; init; }

    /// <summary>Skip malformed records (counting them in <see cref="SkippedRecords"/>) instead of failing.</summary>
    public bool SkipMalformed { get; init; }

    /// <summary>Called with (file, line, reason) for each skipped record.</summary>
    public Action<string, int, string>? SkippedRecords { get; init; }
}

/// <summary>Accumulates a metric over evaluation batches.</summary>
public interface IHeadMetric
{
    /// <summary>The metric used to pick the best checkpoint (a key of <see cref="Compute"/>; higher is better).</summary>
    string Primary { get; }

    void Update(Tensor logits, HeadBatch batch);

    IReadOnlyDictionary<string, double> Compute();
}
