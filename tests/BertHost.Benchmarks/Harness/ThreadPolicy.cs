namespace BertHost.Benchmarks.Harness;

/// <summary>
/// libtorch's OpenMP pool reads OMP_WAIT_POLICY once, when the native library loads, so it can only be chosen in the
/// environment of the process. PASSIVE makes idle workers sleep instead of spin: on a machine shared with other work it
/// kept the host from losing its cores to spinning threads (see README "Performance").
/// </summary>
public static class ThreadPolicy
{
    public static bool PassiveWaiting =>
        string.Equals(Environment.GetEnvironmentVariable("OMP_WAIT_POLICY"), "passive", StringComparison.OrdinalIgnoreCase);
}
