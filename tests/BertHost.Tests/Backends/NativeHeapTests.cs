using System.Runtime.InteropServices;
using BertHost.Core.Backends;

namespace BertHost.Tests.Backends;

/// <summary>
/// The heap trim after a pass: it hands back what freed blocks hold once the resident set grew past the budget, and
/// leaves it alone below. Alone (no parallel tests): another test's pass may trim the same process-wide heap.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NativeHeapCollection
{
    public const string Name = "native heap";
}

[Collection(NativeHeapCollection.Name)]
public sealed class NativeHeapTests
{
    private const int Blocks = 96;
    private const int BlockBytes = 1 << 20;

    [Fact]
    public void Freed_blocks_are_handed_back_once_growth_passes_the_budget_and_kept_below_it()
    {
        if (!OperatingSystem.IsLinux() || !NativeHeap.EnsureTuned() || NativeHeap.ResidentBytes() is null)
        {
            Console.WriteLine("skipped: glibc heap tuning does not apply here");
            return;
        }
        NativeHeap.ReleaseFreeMemoryAbove(0); // the baseline: what the process holds now
        var baseline = NativeHeap.ResidentBytes()!.Value;
        var keepers = StrandTouchedBlocks();
        try
        {
            var grown = NativeHeap.ResidentBytes()!.Value;
            Assert.True(grown - baseline > Blocks * BlockBytes / 2, $"resident {baseline >> 20} MiB before the blocks, {grown >> 20} MiB after freeing them");

            Assert.False(NativeHeap.ReleaseFreeMemoryAbove(4L << 30));
            Assert.True(NativeHeap.ResidentBytes()!.Value > grown - (16 << 20), "below the budget the freed blocks stay resident for reuse");

            Assert.True(NativeHeap.ReleaseFreeMemoryAbove(16 << 20));
            var trimmed = NativeHeap.ResidentBytes()!.Value;
            Assert.True(grown - trimmed > Blocks * BlockBytes / 2, $"resident {grown >> 20} MiB before the trim, {trimmed >> 20} MiB after");
            Assert.False(NativeHeap.ReleaseFreeMemoryAbove(16 << 20)); // nothing grew since
        }
        finally
        {
            foreach (var k in keepers) Marshal.FreeHGlobal(k);
        }
    }

    /// <summary>
    /// What passes of changing lengths leave behind: freed 1 MiB blocks (under the mmap threshold, so from the heap;
    /// touched, so resident) each held apart by a small live allocation, so they stay holes in the heap rather than
    /// merging into its top. Returns the small allocations, to free after the test.
    /// </summary>
    private static IntPtr[] StrandTouchedBlocks()
    {
        var blocks = new IntPtr[Blocks];
        var keepers = new IntPtr[Blocks];
        var ones = Enumerable.Repeat((byte)1, BlockBytes).ToArray();
        for (var i = 0; i < Blocks; i++)
        {
            blocks[i] = Marshal.AllocHGlobal(BlockBytes);
            Marshal.Copy(ones, 0, blocks[i], BlockBytes);
            keepers[i] = Marshal.AllocHGlobal(64);
        }
        foreach (var b in blocks) Marshal.FreeHGlobal(b);
        return keepers;
    }
}
