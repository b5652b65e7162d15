using System.Diagnostics;

namespace BertHost.Benchmarks.Harness;

/// <summary>
/// A timed contender: warm-up calls, then blocks of calls; each block's mean is one sample. Contenders of one
/// comparison run in alternating blocks (round robin), so background load on a shared machine hits them alike and
/// their ratio stays meaningful even when absolute times wander.
/// </summary>
public sealed class Contender(string name, Action run)
{
    public string Name { get; } = name;
    public List<double> Samples { get; } = [];

    public void Warm(int calls)
    {
        for (var i = 0; i < calls; i++) run();
    }

    public void Block(int calls)
    {
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < calls; i++) run();
        Samples.Add(Stopwatch.GetElapsedTime(start).TotalSeconds / calls);
    }
}

public static class Measure
{
    /// <summary>
    /// Round robin: every contender warms up, then <paramref name="rounds"/> rounds of one block each. A pause between
    /// blocks lets the previous runtime's spinning worker threads go idle (ONNX Runtime's and OpenMP's pools both spin
    /// after work and would otherwise steal the two cores from the next contender).
    /// </summary>
    public static Dictionary<string, Stats> RoundRobin(IReadOnlyList<Contender> contenders, int warmup, int rounds, int callsPerBlock, TimeSpan? pause = null)
    {
        var gap = pause ?? TimeSpan.FromMilliseconds(200);
        foreach (var c in contenders)
        {
            c.Warm(warmup);
            Thread.Sleep(gap);
        }
        for (var r = 0; r < rounds; r++)
        {
            // Each round starts with the next contender, so none always runs first (or always after the same one).
            for (var i = 0; i < contenders.Count; i++)
            {
                contenders[(r + i) % contenders.Count].Block(callsPerBlock);
                Thread.Sleep(gap);
            }
        }
        return contenders.ToDictionary(c => c.Name, c => Stats.Of(c.Samples));
    }
}
