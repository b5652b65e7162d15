namespace BertHost.Core.Training;

/// <summary>
/// Progress of the feature-cache fill that starts a head-mode run (one body pass over every training and evaluation
/// example). The trainer reports it to the progress object given to <see cref="Trainer.Train(IReadOnlyList{TrainingTask}, IProgress{TrainingProgress}?, CancellationToken, Action{EpochResult}?)"/>
/// when that object also implements <c>IProgress&lt;FeatureCacheProgress&gt;</c>, after every body pass.
/// </summary>
/// <param name="Done">Examples whose body outputs are cached.</param>
/// <param name="Total">Examples to cache (training and evaluation, every task).</param>
/// <param name="ExamplesPerSecond">Examples cached per second so far.</param>
/// <param name="Eta">Time left at that rate.</param>
public sealed record FeatureCacheProgress(int Done, int Total, double ExamplesPerSecond, TimeSpan Eta)
{
    public bool Finished => Done >= Total;
}
