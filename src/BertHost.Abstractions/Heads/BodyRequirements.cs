namespace BertHost.Abstractions.Heads;

/// <summary>What a head reads from the body pass, so the body computes extra outputs only when some head needs them.</summary>
/// <param name="PooledOutput">The head reads <see cref="BodyOutput.PooledOutput"/>.</param>
/// <param name="HiddenLayers">Hidden states the head reads besides the last one, counted like Python (0 = embeddings,
/// -1 = last layer); null or empty when the last hidden state is enough.</param>
public sealed record BodyRequirements(bool PooledOutput = false, IReadOnlyList<int>? HiddenLayers = null)
{
    public static BodyRequirements LastHiddenState { get; } = new();

    public bool NeedsHiddenStates => HiddenLayers is { Count: > 0 };
}
