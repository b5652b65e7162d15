using BertHost.Core.Backends;

namespace BertHost.Tests.Backends;

/// <summary>
/// The heap trim after a pass: trim once the resident set grew past the budget since the last trim, not before. The
/// policy runs on a scripted resident set here; what trimming gives back depends on the allocator's state (which
/// arena, what sits between the freed blocks), so its effect is measured on real passes instead (docs/deployment.md,
/// `berthost embed` of 5,000 sentences: 830 → 389 MB peak).
/// </summary>
public sealed class NativeHeapTests
{
    private const long MiB = 1 << 20;

    [Fact]
    public void It_trims_once_growth_since_the_last_trim_passes_the_budget()
    {
        long resident = 300 * MiB;
        var trims = 0;
        var growth = new GrowthTrim(() => resident, () => { trims++; resident -= 50 * MiB; });

        growth.Trim();                                      // the baseline: 250 MiB after this trim
        Assert.Equal(1, trims);
        resident += 60 * MiB;                               // 310: grown 60
        Assert.False(growth.TrimIfGrown(64 * MiB));
        resident += 10 * MiB;                               // 320: grown 70
        Assert.True(growth.TrimIfGrown(64 * MiB));          // trims, the baseline becomes 270
        Assert.Equal(2, trims);
        resident += 60 * MiB;                               // 330: grown 60 since that trim
        Assert.False(growth.TrimIfGrown(64 * MiB));
        Assert.Equal(2, trims);
    }

    [Fact]
    public void An_idle_trim_moves_the_baseline_and_no_procfs_means_no_trim()
    {
        long? resident = 400 * MiB;
        var trims = 0;
        var growth = new GrowthTrim(() => resident, () => trims++);
        growth.Trim();                                      // idle trim at 400
        resident = 450 * MiB;
        Assert.False(growth.TrimIfGrown(64 * MiB));         // grown 50 since the idle trim, not 450
        resident = null;
        Assert.False(growth.TrimIfGrown(0));
        Assert.Equal(1, trims);
    }

    [Fact]
    public void The_process_reads_its_resident_set()
    {
        if (!OperatingSystem.IsLinux()) return;
        Assert.InRange(NativeHeap.ResidentBytes()!.Value, 16 * MiB, 64L << 30);
        Assert.False(NativeHeap.ReleaseFreeMemoryAbove(long.MaxValue / 2));
    }
}
