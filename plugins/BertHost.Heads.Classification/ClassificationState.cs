namespace BertHost.Heads.Classification;

/// <summary>How logits become scores in a response (the pipeline's <c>function_to_apply</c>).</summary>
public enum ScoreFunction { Softmax, Sigmoid, None }

/// <summary>What <see cref="ClassificationHead.Encode"/> and the training readers keep in <c>HeadFeatures.State</c>.</summary>
public sealed class ClassificationState
{
    /// <summary>Request parameter <c>top_k</c>: also return the k best labels, sorted.</summary>
    public int? TopK { get; init; }

    /// <summary>Request parameter <c>function_to_apply</c>; null = the head's default (softmax, or sigmoid for multi_label).</summary>
    public ScoreFunction? Function { get; init; }

    /// <summary>Training: the gold label index (single_label).</summary>
    public int? Label { get; init; }

    /// <summary>Training: multi-hot gold labels (multi_label), one 0/1 per label.</summary>
    public float[]? Targets { get; init; }

    /// <summary>Where a training example came from (file:line), for messages.</summary>
    public string? Source { get; init; }
}
