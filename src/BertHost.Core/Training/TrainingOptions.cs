using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Lora;

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
    /// <summary>
    /// The body's weights stay frozen; a low-rank adapter per head (<see cref="TrainingOptions.Lora"/>) trains with the
    /// head, inside the body pass, and is saved in the head folder.
    /// </summary>
    Lora,
}

/// <summary>
/// Arithmetic of the body's passes while training. Master weights, optimizer state, heads and saved weights are float32
/// in every case.
/// </summary>
public enum TrainingPrecision
{
    /// <summary>Everything in float32.</summary>
    Fp32,
    /// <summary>The body's forward and backward passes in bfloat16 (a bfloat16 copy of the body; float32 master weights).</summary>
    Bf16,
    /// <summary>float16 needs loss scaling (a gradient scaler), which TorchSharp 0.107 lacks: refused with a clear error.</summary>
    Fp16,
    /// <summary>bf16 on CUDA and on CPUs with native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16), else fp32.</summary>
    Auto,
}

/// <summary>Settings of one training run.</summary>
public sealed record TrainingOptions
{
    public TrainingMode Mode { get; init; } = TrainingMode.Head;
    public int Epochs { get; init; } = 3;
    public int BatchSize { get; init; } = 16;

    /// <summary>Peak learning rate; null = 1e-3 in head mode, 5e-4 in lora mode, 3e-5 in partial and full mode.</summary>
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

    /// <summary>
    /// Folder for resumable checkpoints; null = none. When set, a checkpoint is written after every epoch (and every
    /// <see cref="CheckpointEverySteps"/> optimizer steps), and <see cref="Trainer.Train(IReadOnlyList{TrainingTask}, IProgress{TrainingProgress}?, CancellationToken, Action{EpochResult}?)"/>
    /// resumes from the one found there.
    /// </summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Also checkpoint every N optimizer steps; null = only at the end of each epoch.</summary>
    public int? CheckpointEverySteps { get; init; }

    /// <summary>Arithmetic of the body's passes (master weights stay float32).</summary>
    public TrainingPrecision Precision { get; init; } = TrainingPrecision.Fp32;

    /// <summary>The adapters' shape in lora mode (rank, alpha, dropout, target modules).</summary>
    public LoraSettings Lora { get; init; } = new();

    public double EffectiveLearningRate => LearningRate ?? Mode switch
    {
        TrainingMode.Head => 1e-3,
        // Adapters start at zero and have few parameters: LoRA recipes use a rate an order above full fine-tuning's.
        TrainingMode.Lora => 5e-4,
        _ => 3e-5,
    };

    public void Validate()
    {
        if (Epochs < 1) throw new ArgumentException("epochs must be at least 1");
        if (BatchSize < 1) throw new ArgumentException("batch size must be at least 1");
        if (GradientAccumulationSteps < 1) throw new ArgumentException("gradient accumulation steps must be at least 1");
        if (EffectiveLearningRate < 0) throw new ArgumentException("learning rate must not be negative");
        if (WarmupRatio is < 0 or > 1) throw new ArgumentException("warmup ratio must be between 0 and 1");
        if (EarlyStoppingPatience is < 1) throw new ArgumentException("early stopping patience must be at least 1");
        if (Mode == TrainingMode.Partial && PartialLayers < 1) throw new ArgumentException("partial layers must be at least 1");
        if (CheckpointEverySteps is < 1) throw new ArgumentException("checkpoint every steps must be at least 1");
        if (CheckpointEverySteps is not null && CheckpointDirectory is null) throw new ArgumentException("checkpoint every steps needs a checkpoint directory");
        if (Mode == TrainingMode.Lora) Lora.Validate();
    }

    /// <summary>The settings that shape the run (what a resumed run must share with the checkpoint it resumes).</summary>
    public JsonObject ToJson()
    {
        var json = new JsonObject
        {
            ["mode"] = Mode.ToString().ToLowerInvariant(),
            ["epochs"] = Epochs,
            ["batch_size"] = BatchSize,
            ["learning_rate"] = EffectiveLearningRate,
            ["weight_decay"] = WeightDecay,
            ["warmup_ratio"] = WarmupRatio,
            ["max_grad_norm"] = MaxGradNorm,
            ["gradient_accumulation_steps"] = GradientAccumulationSteps,
            ["seed"] = Seed,
            ["eval_every_epoch"] = EvalEveryEpoch,
            ["early_stopping_patience"] = EarlyStoppingPatience,
            ["partial_layers"] = PartialLayers,
            ["feature_cache"] = UseFeatureCache,
            ["precision"] = Precision.ToString().ToLowerInvariant(),
        };
        // Only lora runs name their adapters: other runs' identity (and so their checkpoints) stays as it was.
        if (Mode == TrainingMode.Lora) json["lora"] = Lora.ToJson();
        return json;
    }

    public static TrainingPrecision ParsePrecision(string value) => value.ToLowerInvariant() switch
    {
        "fp32" or "float32" => TrainingPrecision.Fp32,
        "bf16" or "bfloat16" => TrainingPrecision.Bf16,
        "fp16" or "float16" => TrainingPrecision.Fp16,
        "auto" => TrainingPrecision.Auto,
        _ => throw new ArgumentException($"precision '{value}' is not one of fp32, bf16, fp16, auto"),
    };

    public static TrainingMode ParseMode(string value) => value.ToLowerInvariant() switch
    {
        "head" => TrainingMode.Head,
        "partial" => TrainingMode.Partial,
        "full" => TrainingMode.Full,
        "lora" => TrainingMode.Lora,
        _ => throw new ArgumentException($"mode '{value}' is not one of head, partial, full, lora"),
    };
}

/// <summary>Where a run stands, reported after every optimizer step.</summary>
/// <param name="Loss">Running mean of the training loss in this epoch.</param>
/// <param name="Task">The task (head name) whose batch this step trained on.</param>
public sealed record TrainingProgress(int Epoch, int Epochs, int Step, int TotalSteps, double Loss, double ExamplesPerSecond, TimeSpan Eta,
    string? Task = null);

/// <summary>
/// One epoch: its mean training loss (over every batch of every task) and, when evaluated, the metrics on the eval set.
/// With one task <see cref="Metrics"/> are that head's; with several they are <c>TASK.METRIC</c> for each task plus
/// <see cref="TrainingMetrics.MeanPrimary"/>, the mean of the tasks' primary metrics, which picks the best epoch.
/// </summary>
/// <param name="Tasks">Each task's own mean loss and metrics, by task (head) name.</param>
public sealed record EpochResult(int Epoch, double TrainLoss, IReadOnlyDictionary<string, double>? Metrics, double Seconds,
    IReadOnlyDictionary<string, TaskEpochResult>? Tasks = null);

/// <summary>One task's part of an epoch.</summary>
public sealed record TaskEpochResult(double TrainLoss, IReadOnlyDictionary<string, double>? Metrics);

/// <summary>Names of the metrics the trainer adds itself.</summary>
public static class TrainingMetrics
{
    /// <summary>Multitask: the mean of the tasks' primary metrics.</summary>
    public const string MeanPrimary = "mean_primary";
}

/// <summary>
/// The outcome of a run; the heads (and in partial/full mode the body) hold the best weights when it returns.
/// <see cref="ResumedFromEpoch"/>/<see cref="ResumedFromStep"/> say where a resumed run picked up (epoch in progress,
/// optimizer steps already done in it); null for a fresh run. <see cref="Epochs"/> always covers the whole run.
/// </summary>
public sealed record TrainingResult(IReadOnlyList<EpochResult> Epochs, int? BestEpoch, IReadOnlyDictionary<string, double>? BestMetrics,
    bool StoppedEarly, long BodyPasses, int? ResumedFromEpoch = null, int? ResumedFromStep = null);

/// <summary>One head's training job inside a run: the head, its training data and optional evaluation data.</summary>
public sealed record TrainingTask(IHead Head, IReadOnlyList<HeadFeatures> Train, IReadOnlyList<HeadFeatures>? Eval = null)
{
    public string Name => Head.Name;
}
