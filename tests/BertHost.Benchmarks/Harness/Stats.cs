namespace BertHost.Benchmarks.Harness;

/// <summary>Order statistics of repeated measurements (seconds).</summary>
public sealed record Stats(int Count, double Median, double Min, double Max, double P95, double P99)
{
    public static Stats Of(IReadOnlyCollection<double> samples)
    {
        if (samples.Count == 0) throw new ArgumentException("no samples");
        var sorted = samples.Order().ToArray();
        return new Stats(sorted.Length, Quantile(sorted, 0.5), sorted[0], sorted[^1], Quantile(sorted, 0.95), Quantile(sorted, 0.99));
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
