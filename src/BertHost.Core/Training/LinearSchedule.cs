namespace BertHost.Core.Training;

/// <summary>Linear warmup to the peak learning rate, then linear decay to 0 at the last step (BERT's schedule).</summary>
public static class LinearSchedule
{
    /// <summary>The multiplier of the peak learning rate for optimizer step <paramref name="step"/> (0-based).</summary>
    public static double Factor(long step, long warmupSteps, long totalSteps) =>
        step < warmupSteps
            ? (step + 1.0) / (warmupSteps + 1.0)
            : Math.Max(0.0, (double)(totalSteps - step) / Math.Max(1, totalSteps - warmupSteps));
}
