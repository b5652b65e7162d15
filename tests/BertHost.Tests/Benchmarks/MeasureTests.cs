using BertHost.Benchmarks.Harness;

namespace BertHost.Tests.Benchmarks;

/// <summary>The benchmark harness behind the README's figures: round order and how two engines' ratio is taken.</summary>
public class MeasureTests
{
    [Fact]
    public void Each_round_starts_with_the_next_contender()
    {
        var order = new List<string>();
        var contenders = new[] { "a", "b", "c" }.Select(n => new Contender(n, () => order.Add(n))).ToList();
        var stats = Measure.RoundRobin(contenders, warmup: 0, rounds: 3, callsPerBlock: 1, pause: TimeSpan.Zero);
        Assert.Equal("abcbcacab", string.Concat(order));
        Assert.All(stats.Values, s => Assert.Equal(3, s.Samples.Count));
    }

    [Fact]
    public void The_paired_ratio_is_the_median_of_the_ratios_within_rounds()
    {
        // Round 2 ran on a machine 2-3x slower; within each round the reference took 1.1x, 0.8x and 1.2x as long.
        var subject = Stats.Of([1.0, 5.0, 2.0]);
        var reference = Stats.Of([1.1, 4.0, 2.4]);
        Assert.Equal(1.1, Stats.PairedRatio(reference, subject), 10);
        Assert.Equal(1.2, reference.Median / subject.Median, 10);

        var drifting = Stats.Of([1.0, 2.0, 3.0, 4.0]);
        var steadyFaster = Stats.Of([1.1, 2.2, 3.3, 4.4]);
        Assert.Equal(1.1, Stats.PairedRatio(steadyFaster, drifting), 10);
        Assert.Equal(1.0, Stats.PairedRatio(drifting, drifting), 10);
    }

    [Fact]
    public void Samples_that_do_not_pair_up_fall_back_to_the_ratio_of_medians()
    {
        var subject = Stats.Of([1.0, 2.0, 3.0]);
        var reference = Stats.Of([4.0, 4.0]);
        Assert.Equal(2.0, Stats.PairedRatio(reference, subject), 10);
    }
}
