namespace BertHost.Core.Pretraining;

/// <summary>Settings of a masked-LM pre-training run (the CLI's and the job API's options map onto these).</summary>
public sealed record PretrainingOptions
{
    /// <summary>Plain-text corpus files (.txt, .gz, .xz); documents separated by blank lines.</summary>
    public required IReadOnlyList<string> Corpus { get; init; }

    /// <summary>Where tokenized corpora are cached (reused across runs).</summary>
    public required string CacheDirectory { get; init; }

    /// <summary>Where the resumable checkpoint lives; a run finding one there continues from it.</summary>
    public required string CheckpointDirectory { get; init; }

    /// <summary>Optimizer steps of the whole run (the learning-rate schedule spans them).</summary>
    public int MaxSteps { get; init; } = 10_000;

    /// <summary>Stop cleanly (with a checkpoint) after this much wall time in this process; null = no limit.</summary>
    public double? MaxMinutes { get; init; }

    /// <summary>Sequences per micro-batch.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Micro-batches per optimizer step.</summary>
    public int GradientAccumulationSteps { get; init; } = 1;

    /// <summary>Sequence length of the first phase ([CLS] and [SEP] included).</summary>
    public int SequenceLength { get; init; } = 128;

    /// <summary>The second phase's longer length (BERT: 512 for the last 10 % of steps); null = one phase.</summary>
    public int? LongSequenceLength { get; init; }

    /// <summary>Share of the steps run at <see cref="LongSequenceLength"/> (at the end).</summary>
    public double LongPhaseFraction { get; init; } = 0.1;

    public double LearningRate { get; init; } = 5e-4;

    /// <summary>Linear warmup steps; null = 6 % of <see cref="MaxSteps"/>.</summary>
    public int? WarmupSteps { get; init; }

    public double WeightDecay { get; init; } = 0.01;
    public double MaxGradNorm { get; init; } = 1.0;
    public double MaskProbability { get; init; } = 0.15;
    public bool WholeWordMasking { get; init; }

    /// <summary>Evaluate on the held-out sequences every N steps (and at the end); 0 = only at the end.</summary>
    public int EvalEvery { get; init; } = 500;

    /// <summary>Sequences held out of training for the MLM loss and masked-token accuracy.</summary>
    public int EvalSequences { get; init; } = 256;

    /// <summary>Write the resumable checkpoint every N steps (and when stopping); 0 = only when stopping.</summary>
    public int CheckpointEvery { get; init; } = 1000;

    /// <summary>Record the running training loss every N steps (the loss curve).</summary>
    public int LogEvery { get; init; } = 50;

    public int Seed { get; init; } = 42;

    /// <summary><c>auto</c>, <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.</summary>
    public string Device { get; init; } = "auto";

    /// <summary><c>fp32</c>, or <c>tf32</c> (CUDA matmuls in TensorFloat-32). bf16/fp16 autocast is not in TorchSharp 0.107.</summary>
    public string Precision { get; init; } = "fp32";

    /// <summary>Problems with the settings, each naming the option; empty when they are usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        if (Corpus.Count == 0) p.Add("corpus: give at least one file");
        if (MaxSteps < 1) p.Add($"max_steps must be at least 1, got {MaxSteps}");
        if (MaxMinutes is <= 0) p.Add($"max_minutes must be positive, got {MaxMinutes}");
        if (BatchSize < 1) p.Add($"batch_size must be at least 1, got {BatchSize}");
        if (GradientAccumulationSteps < 1) p.Add($"grad_accum must be at least 1, got {GradientAccumulationSteps}");
        if (SequenceLength < 8) p.Add($"seq_len must be at least 8, got {SequenceLength}");
        if (LongSequenceLength is { } l && l <= SequenceLength) p.Add($"long_seq_len ({l}) must be longer than seq_len ({SequenceLength})");
        if (LongPhaseFraction is < 0 or >= 1) p.Add($"long_fraction must be in [0, 1), got {LongPhaseFraction}");
        if (!(LearningRate > 0)) p.Add($"lr must be positive, got {LearningRate}");
        if (WarmupSteps is < 0) p.Add($"warmup must be >= 0, got {WarmupSteps}");
        if (WeightDecay < 0) p.Add($"weight_decay must be >= 0, got {WeightDecay}");
        if (MaskProbability is <= 0 or >= 1) p.Add($"mask_probability must be between 0 and 1, got {MaskProbability}");
        if (EvalEvery < 0) p.Add($"eval_every must be >= 0, got {EvalEvery}");
        if (EvalSequences < 1) p.Add($"eval_sequences must be at least 1, got {EvalSequences}");
        if (CheckpointEvery < 0) p.Add($"checkpoint_every must be >= 0, got {CheckpointEvery}");
        if (LogEvery < 1) p.Add($"log_every must be at least 1, got {LogEvery}");
        if (Precision is not ("fp32" or "tf32"))
            p.Add(Precision is "bf16" or "fp16"
                ? $"precision {Precision}: mixed-precision training needs autocast, which TorchSharp 0.107 does not have; use fp32 (or tf32 on CUDA)"
                : $"precision '{Precision}' is not one of fp32, tf32, bf16, fp16");
        return p;
    }

    public int EffectiveWarmupSteps => WarmupSteps ?? (int)Math.Ceiling(MaxSteps * 0.06);

    /// <summary>The first optimizer step of the long-sequence phase (= MaxSteps when there is none).</summary>
    public int LongPhaseStart => LongSequenceLength is null ? MaxSteps : (int)Math.Round(MaxSteps * (1 - LongPhaseFraction));
}

/// <summary>What the run is doing when it reports.</summary>
public enum PretrainPhase { Tokenizing, Training, Evaluating, Checkpointing }

/// <summary>A progress report: step counts and rates while training; documents and tokens while tokenizing.</summary>
public sealed record PretrainProgress(PretrainPhase Phase, long Step, long TotalSteps, double Loss, double LearningRate,
    double TokensPerSecond, TimeSpan Elapsed, TimeSpan Eta, TokenizeProgress? Tokenizing = null);

/// <summary>One point of the loss curve: the training loss averaged since the previous point, and eval metrics where evaluated.</summary>
public sealed record PretrainPoint(long Step, double TrainLoss, double? EvalLoss, double? MaskedAccuracy, double LearningRate,
    long TokensSeen, double Seconds);

/// <summary>How a run ended.</summary>
public sealed record PretrainResult(
    long Steps, bool Completed, string StopReason, IReadOnlyList<double> StepLosses, IReadOnlyList<PretrainPoint> Curve,
    double? EvalLoss, double? MaskedAccuracy, double TokensPerSecond, long TokensSeen, double TrainSeconds, long CorpusTokens,
    long TrainSequences, bool Resumed);
