using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace BertHost.Core.Backends;

/// <summary>
/// Runs C# work on libtorch's own OpenMP team (libgomp's <c>GOMP_parallel</c>, what <c>#pragma omp parallel</c> compiles
/// to), so a kernel written here shares the threads libtorch's operators use instead of competing with them. After each
/// operator libgomp's idle workers spin for a while before they sleep; .NET threads started in that window find their
/// cores taken. Measured on the 2-core build machine: <see cref="CpuAttention"/> for MiniLM 8×128 took 1.0 ms alone but
/// 1.9 ms right after a GEMM on .NET's thread pool, against 1.6 ms for libtorch's SDPA either way.
/// </summary>
internal static unsafe class OpenMpTeam
{
    private sealed class Exports(IntPtr parallel, IntPtr threadNum)
    {
        public readonly delegate* unmanaged<delegate* unmanaged<IntPtr, void>, IntPtr, uint, uint, void> Parallel =
            (delegate* unmanaged<delegate* unmanaged<IntPtr, void>, IntPtr, uint, uint, void>)parallel;
        public readonly delegate* unmanaged<int> ThreadNum = (delegate* unmanaged<int>)threadNum;
    }

    private static readonly Lazy<Exports?> Gomp = new(Find);

    /// <summary>Whether libtorch's OpenMP runtime (libgomp) is loaded in this process and could be bound.</summary>
    public static bool Available => Gomp.Value is not null;

    /// <summary>
    /// Runs <paramref name="body"/> once on each of <paramref name="threads"/> team threads (the caller is thread 0) and
    /// returns when all are done; the first exception any of them threw is rethrown here.
    /// </summary>
    public static void Run(int threads, Action<int> body)
    {
        var gomp = Gomp.Value ?? throw new InvalidOperationException("libgomp is not loaded in this process");
        var state = new State(body, gomp.ThreadNum);
        var handle = GCHandle.Alloc(state);
        try
        {
            gomp.Parallel(&Invoke, GCHandle.ToIntPtr(handle), (uint)threads, 0);
        }
        finally
        {
            handle.Free();
        }
        if (state.Error is { } error) ExceptionDispatchInfo.Capture(error).Throw();
    }

    /// <summary>
    /// Calls <paramref name="rows"/>(from, to) over [<paramref name="first"/>, <paramref name="end"/>) in chunks of
    /// <paramref name="chunk"/> rows, spread over libtorch's team where there is more than one chunk (on the caller alone
    /// where libgomp is not loaded).
    /// </summary>
    public static void ForRows(int first, int end, int chunk, Action<int, int> rows)
    {
        var chunks = (end - first + chunk - 1) / chunk;
        var threads = Math.Min(TorchSharp.torch.get_num_threads(), chunks);
        if (threads <= 1 || !Available)
        {
            if (end > first) rows(first, end);
            return;
        }
        var next = -1;
        Run(threads, _ =>
        {
            for (int c; (c = Interlocked.Increment(ref next)) < chunks;) rows(first + c * chunk, Math.Min(end, first + (c + 1) * chunk));
        });
    }

    private sealed class State(Action<int> body, delegate* unmanaged<int> threadNum)
    {
        public Exception? Error;

        public void RunOnThisThread()
        {
            try
            {
                body(threadNum());
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref Error, e, null);
            }
        }
    }

    // An exception must not unwind into libgomp's frames: State catches everything.
    [UnmanagedCallersOnly]
    private static void Invoke(IntPtr data) => ((State)GCHandle.FromIntPtr(data).Target!).RunOnThisThread();

    /// <summary>The libgomp that libtorch loaded (its file name carries a build hash), found among the process's mappings.</summary>
    private static Exports? Find()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            var path = File.ReadLines("/proc/self/maps")
                .Select(line => line.IndexOf('/') is var slash and >= 0 ? line[slash..] : null)
                .FirstOrDefault(p => p is not null && Path.GetFileName(p).StartsWith("libgomp", StringComparison.Ordinal));
            if (path is null || !NativeLibrary.TryLoad(path, out var library)) return null;
            if (!NativeLibrary.TryGetExport(library, "GOMP_parallel", out var parallel) ||
                !NativeLibrary.TryGetExport(library, "omp_get_thread_num", out var threadNum))
                return null;
            return new Exports(parallel, threadNum);
        }
        catch (IOException)
        {
            return null;
        }
    }
}
