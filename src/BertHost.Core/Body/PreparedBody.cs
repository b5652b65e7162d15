using BertHost.Core.Text;

namespace BertHost.Core.Body;

/// <summary>
/// A body whose settings, config and tokenizer are read (<see cref="BertBody.Prepare"/>) and whose weights are not yet:
/// its tokenizer and longest input are known, so inputs can be tokenized on other threads while <see cref="Load"/> runs.
/// </summary>
/// <remarks>
/// Load on the thread that will run the passes. libgomp gives each thread that starts parallel regions a team of its
/// own; with two teams on two cores its workers stop spinning and sleep between operators (loading on a pool thread and
/// serving on another: 33,704 voluntary context switches instead of 780, and <c>berthost embed</c> 3.9 s instead of 3.2).
/// </remarks>
public sealed class PreparedBody
{
    private readonly Func<BertBody> _load;

    internal PreparedBody(BertTextTokenizer tokenizer, int maxSequenceLength, Func<BertBody> load)
    {
        Tokenizer = tokenizer;
        MaxSequenceLength = maxSequenceLength;
        _load = load;
    }

    /// <summary>The tokenizer the body will have (the same instance).</summary>
    public BertTextTokenizer Tokenizer { get; }

    /// <summary>What <see cref="BertBody.MaxSequenceLength"/> will be.</summary>
    public int MaxSequenceLength { get; }

    /// <summary>Reads the weights on this thread; the body belongs to the caller. Throws what <see cref="BertBody.Load"/> would.</summary>
    /// <exception cref="BodyLoadException">The checkpoint or the settings' kernels could not be loaded.</exception>
    public BertBody Load() => _load();
}
