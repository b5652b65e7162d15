namespace BertHost.Benchmarks.Harness;

/// <summary>Order statistics of repeated measurements (seconds).</summary>
public sealed record Stats(int Count, double Median, double Min, double Max, double P95, double P99)
{
    public static Stats Of(IReadOnlyCollection<double> samples)
    {
        if (samples.Count == 0) throw new ArgumentException("no samples");
        var sorted = samples.Order().ToArray();
        return new Stats(sorted.Length, Quantile(sorted, 0.5), sorted[0], sorted[^1], Quantile(sorted, 0.95), Quantile(sorted, 0.99))
        {
            Samples = samples.ToArray(),
        };
    }

    /// <summary>The samples in the order they were taken (round by round for a round robin).</summary>
    public IReadOnlyList<double> Samples { get; init; } = [];

    /// <summary>
    /// How many times longer <paramref name="reference"/> took than <paramref name="subject"/>: the median over rounds of
    /// the two samples taken in the same round. Pairing by round cancels the machine's drift between rounds, which on a
    /// shared machine is larger than the difference being measured; the ratio of the medians is the fallback when the
    /// samples do not pair up.
    /// </summary>
    public static double PairedRatio(Stats reference, Stats subject)
    {
        if (reference.Samples.Count != subject.Samples.Count || subject.Samples.Count == 0) return reference.Median / subject.Median;
        var ratios = reference.Samples.Zip(subject.Samples, (r, s) => r / s).Order().ToArray();
        return Quantile(ratios, 0.5);
    }

    /// <summary>Linear interpolation between closest ranks (numpy's default).</summary>
    public static double Quantile(double[] sorted, double q)
    {
        if (sorted.Length == 1) return sorted[0];
        var pos = q * (sorted.Length - 1);
        var lo = (int)Math.Floor(pos);
        var hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }

    /// <summary>(max - min) / median: how much the repetitions disagree.</summary>
    public double Spread => Median > 0 ? (Max - Min) / Median : 0;
}
