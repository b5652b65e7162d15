using static TorchSharp.torch;

namespace BertHost.Core.Body;

/// <summary>
/// How much one body pass holds: at most a number of padded tokens (rows × longest row) and of items, both for the
/// serving scheduler (<c>batching.max_batch_tokens</c>) and for <see cref="FeatureExtractor"/> (<c>berthost embed</c>).
/// </summary>
public static class PassBudget
{
    /// <summary>
    /// Padded tokens per pass on a CPU when nothing else is configured. Larger passes are slower per token on the CPU:
    /// their activation blocks no longer fit the heap that earlier passes freed, so each pass maps and faults in fresh
    /// pages (and int8's row-scaled inputs pass glibc's 32 MiB mmap threshold at ~5,500 rows of 1,536). all-MiniLM-L6-v2,
    /// 8,192 tokens in passes of 1,024 / 2,048 / 4,096 / 8,192: int8 296 / 326 / 438 / 781 ms, float32 472 / 471 / 529 /
    /// 631 ms (docs/performance.md, "Tokens per pass").
    /// </summary>
    public const int CpuTokens = 1024;

    /// <summary>Padded tokens per pass on a GPU when nothing else is configured: large passes keep it busy.</summary>
    public const int AcceleratorTokens = 16384;

    /// <summary>The default budget for a body on <paramref name="device"/>.</summary>
    public static int DefaultTokens(Device device) => device.type == TorchSharp.DeviceType.CPU ? CpuTokens : AcceleratorTokens;

    /// <summary>
    /// Cuts <paramref name="items"/> (in the order given: sort them by length first so passes pad little) into passes of
    /// at most <paramref name="maxTokens"/> padded tokens and <paramref name="maxItems"/> items; an item is never split,
    /// and one larger than the budget runs alone.
    /// </summary>
    /// <param name="rows">Body rows an item adds (a long input split into windows adds several).</param>
    /// <param name="length">An item's longest row, in tokens.</param>
    public static List<List<T>> Cut<T>(IEnumerable<T> items, Func<T, int> rows, Func<T, int> length, int maxTokens, int maxItems)
    {
        var passes = new List<List<T>>();
        var current = new List<T>();
        int currentRows = 0, longest = 0;
        foreach (var item in items)
        {
            var newLongest = Math.Max(longest, length(item));
            var fits = current.Count < maxItems && (long)(currentRows + rows(item)) * newLongest <= maxTokens;
            if (current.Count > 0 && !fits)
            {
                passes.Add(current);
                current = [];
                currentRows = 0;
                newLongest = length(item);
            }
            current.Add(item);
            currentRows += rows(item);
            longest = newLongest;
        }
        if (current.Count > 0) passes.Add(current);
        return passes;
    }
}
