namespace BertHost.Abstractions.Heads;

/// <summary>
/// The numeric helpers the heads' decoding shares, in double precision so that every kind scores alike
/// (and as the Python pipelines, which compute in float64 after <c>.numpy()</c>).
/// </summary>
public static class HeadMath
{
    /// <summary>Softmax (max-subtracted) in double precision.</summary>
    public static double[] Softmax(ReadOnlySpan<float> logits)
    {
        var s = new double[logits.Length];
        for (var j = 0; j < s.Length; j++) s[j] = logits[j];
        SoftmaxInPlace(s);
        return s;
    }

    /// <summary>Softmax (max-subtracted) of <paramref name="values"/>, written over them.</summary>
    public static void SoftmaxInPlace(Span<double> values)
    {
        var max = double.NegativeInfinity;
        foreach (var v in values) max = Math.Max(max, v);
        double sum = 0;
        for (var j = 0; j < values.Length; j++) sum += values[j] = Math.Exp(values[j] - max);
        for (var j = 0; j < values.Length; j++) values[j] /= sum;
    }

    /// <summary>The logistic function in double precision.</summary>
    public static double Sigmoid(float logit) => 1.0 / (1.0 + Math.Exp(-(double)logit));

    /// <summary>Index of the largest value (the first one on ties; 0 for an empty span).</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var j = 1; j < values.Length; j++) if (values[j] > values[best]) best = j;
        return best;
    }

    /// <summary>Index of the largest value (the first one on ties; 0 for an empty span).</summary>
    public static int ArgMax(ReadOnlySpan<double> values)
    {
        var best = 0;
        for (var j = 1; j < values.Length; j++) if (values[j] > values[best]) best = j;
        return best;
    }
}
