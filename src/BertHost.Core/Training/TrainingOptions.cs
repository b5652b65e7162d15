namespace BertHost.Core.Training;

/// <summary>What trains: the head alone on a frozen body, the head with the top encoder layers, or everything.</summary>
public enum TrainingMode
{
    /// <summary>Body frozen (eval, no autograd, outputs cached once per example); only the head trains.</summary>
    Head,
    /// <summary>The top <see cref="TrainingOptions.PartialLayers"/> encoder layers (+ pooler) train with the head.</summary>
    Partial,
    /// <summary>The whole body trains with the head.</summary>
    Full,
}

/// <summary>Settings of one training run.</summary>
public sealed record TrainingOptions
{
    public TrainingMode Mode { get; init; } = TrainingMode.Head;
    public int Epochs { get; init; } = 3;
    public int BatchSize { get; init; } = 16;

    /// <summary>Peak learning rate; null = 1e-3 in head mode, 3e-5 in partial and full mode.</summary>
    public double? LearningRate { get; init; }

    /// <summary>AdamW weight decay (never on biases, LayerNorm weights or any other 1-D parameter).</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Share of the optimizer steps spent warming the learning rate up linearly; then it decays linearly to 0.</summary>
    public double WarmupRatio { get; init; } = 0.1;

    /// <summary>Gradient norm clip; 0 or less = no clipping.</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    public int GradientAccumulationSteps { get; init; } = 1;
    public int Seed { get; init; } = 42;

    /// <summary>Evaluate after every epoch (else only after the last one).</summary>
    public bool EvalEveryEpoch { get; init; } = true;

    /// <summary>Epochs without improvement of the metric's primary value before stopping; null = never stop early.</summary>
    public int? EarlyStoppingPatience { get; init; }

    /// <summary>Encoder layers (from the top) that train in partial mode.</summary>
    public int PartialLayers { get; init; } = 1;

    /// <summary>Head mode: compute body outputs once per example and reuse them every epoch.</summary>
    public bool UseFeatureCache { get; init; } = true;

    public double EffectiveLearningRate => LearningRate ?? (Mode == TrainingMode.Head ? 1e-3 : 3e-5);

    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentException("epochs must be at least 1");
        if (BatchSize < 1) throw new ArgumentException("batch size must be at least 1");
        if (GradientAccumulationSteps < 1) throw new ArgumentException("gradient accumulation steps must be at least 1");
        if (EffectiveLearningRate < 0) throw new ArgumentException("learning rate must not be negative");
        if (WarmupRatio is < 0 or > 1) throw new ArgumentException("warmup ratio must be between 0 and 1");
        if (EarlyStoppingPatience is < 1) throw new ArgumentException("early stopping patience must be at least 1");
        if (Mode == TrainingMode.Partial && PartialLayers < 1) throw new ArgumentException("partial layers must be at least 1");
    }

    public static TrainingMode ParseMode(string value) => value.ToLowerInvariant() switch
    {
        "head" => TrainingMode.Head,
        "partial" => TrainingMode.Partial,
        "full" => TrainingMode.Full,
        _ => throw new ArgumentException($"mode '{value}' is not one of head, partial, full"),
    };
}

/// <summary>Where a run stands, reported after every optimizer step.</summary>
/// <param name="Loss">Running mean of the training loss in this epoch.</param>
public sealed record TrainingProgress(int Epoch, int Epochs, int Step, int TotalSteps, double Loss, double ExamplesPerSecond, TimeSpan Eta);

/// <summary>One epoch: its mean training loss and, when evaluated, the metrics on the eval set.</summary>
public sealed record EpochResult(int Epoch, double TrainLoss, IReadOnlyDictionary<string, double>? Metrics, double Seconds);

/// <summary>The outcome of a run; the head (and in partial/full mode the body) hold the best weights when it returns.</summary>
public sealed record TrainingResult(IReadOnlyList<EpochResult> Epochs, int? BestEpoch, IReadOnlyDictionary<string, double>? BestMetrics,
    bool StoppedEarly, long BodyPasses);
