using System.Runtime.InteropServices;

namespace BertHost.Core.Backends;

/// <summary>
/// Keeps glibc from handing libtorch's activation buffers back to the kernel after every pass. libtorch's CPU
/// allocator is plain malloc; glibc serves blocks above its mmap threshold (128 KiB until it adapts) with fresh
/// mappings and trims the heap top on free, so each pass page-faulted and zeroed its activations anew: perf showed
/// ~660k page faults in 70 passes of MiniLM 8×128 and kernel page clearing among the top symbols. With blocks up to
/// 32 MiB kept on the heap the faults drop ~10x and the pass is 6-20 % faster (ONNX Runtime avoids the same cost with
/// its own arena). The price: freed activation memory stays in the process for reuse while it is busy; <see cref="ReleaseFreeMemory"/>
/// hands it back when serving goes idle.
/// Arenas are capped at one per CPU (glibc's default is eight per CPU): every thread that allocates (libtorch's
/// OpenMP team, the thread pool's tokenizers) otherwise got an arena of its own whose free blocks stay mapped, and
/// <c>berthost embed</c> on MiniLM peaked ~70 MB higher (570 MB vs 493 MB for 1,000 SST-2 sentences).
/// </summary>
public static class NativeHeap
{
    private const int M_TRIM_THRESHOLD = -1;
    private const int M_MMAP_THRESHOLD = -3;
    private const int M_ARENA_MAX = -8;

    /// <summary>glibc's ceiling for M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2); larger values are refused.</summary>
    private const int MmapThreshold = 32 << 20;

    private const int TrimThreshold = 256 << 20;

    private static readonly Lazy<bool> Applied = new(Apply);

    /// <summary>Applies the settings once per process; false where they do not apply (not glibc, or refused).</summary>
    public static bool EnsureTuned() => Applied.Value;

    private static bool Apply()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("BERTHOST_MALLOC_TUNING") == "0") return false;
        try
        {
            return mallopt(M_MMAP_THRESHOLD, MmapThreshold) == 1 & mallopt(M_TRIM_THRESHOLD, TrimThreshold) == 1
                & mallopt(M_ARENA_MAX, Math.Max(2, Environment.ProcessorCount)) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false; // not glibc (e.g. musl): nothing to tune
        }
    }

    /// <summary>
    /// Returns free heap memory to the OS (glibc <c>malloc_trim</c>): what the raised trim threshold keeps for the next
    /// pass is given back once the host is idle, so a quiet daemon's RSS does not stay at its busiest pass.
    /// </summary>
    public static void ReleaseFreeMemory()
    {
        if (Applied.IsValueCreated && Applied.Value) Growth.Trim();
    }

    /// <summary>
    /// Hands free heap memory back (as <see cref="ReleaseFreeMemory"/>) once the process's resident set has grown more
    /// than <paramref name="budget"/> bytes since the last time it did. Passes over inputs of changing lengths leave
    /// freed blocks that later, larger blocks do not fit (the heap grows at its top instead): embedding 5,000
    /// length-sorted SST-2 sentences grew an int8 body's process by 400 MB that no pass reused. Checked after each
    /// pass, this bounds that growth while passes of a steady size keep reusing what they free (a budget above one
    /// pass's working set never trims between them). True when it trimmed.
    /// </summary>
    public static bool ReleaseFreeMemoryAbove(long budget) => Applied.IsValueCreated && Applied.Value && Growth.TrimIfGrown(budget);

    private static readonly GrowthTrim Growth = new(ResidentBytes, TrimHeap);

    private static void TrimHeap()
    {
        try
        {
            malloc_trim(0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
    }

    /// <summary>The process's resident set (second field of /proc/self/statm, in pages); null where there is no procfs.</summary>
    public static long? ResidentBytes()
    {
        try
        {
            var fields = File.ReadAllText("/proc/self/statm").Split(' ');
            return long.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) * Environment.SystemPageSize;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int malloc_trim(nuint pad);

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}

/// <summary>
/// When to trim: once the resident set grew more than a budget since the last trim (whoever asked for that one). The
/// policy apart from glibc, so it is testable with a scripted resident set.
/// </summary>
internal sealed class GrowthTrim(Func<long?> resident, Action trim)
{
    private readonly object _gate = new();
    private long _residentAfterTrim;

    public void Trim()
    {
        lock (_gate)
        {
            trim();
            _residentAfterTrim = resident() ?? 0;
        }
    }

    public bool TrimIfGrown(long budget)
    {
        lock (_gate)
        {
            if (resident() is not { } now || now - _residentAfterTrim <= budget) return false;
            Trim(); // the gate is re-entrant
            return true;
        }
    }
}
