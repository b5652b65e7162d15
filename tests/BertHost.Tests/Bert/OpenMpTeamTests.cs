using System.Collections.Concurrent;
using BertHost.Core.Bert;
using static TorchSharp.torch;
using BertHost.Core.Backends;

namespace BertHost.Tests.Bert;

/// <summary>C# work on libtorch's OpenMP team (<see cref="OpenMpTeam"/>): found, run on every team thread, errors surfaced.</summary>
public class OpenMpTeamTests
{
    public OpenMpTeamTests()
    {
        // libgomp arrives with libtorch: make sure it is loaded whatever ran before.
        using var warm = ones(2, 2).matmul(ones(2, 2));
    }

    [Fact]
    public void Libtorchs_openmp_runtime_is_found_on_linux()
    {
        Assert.Equal(OperatingSystem.IsLinux(), OpenMpTeam.Available);
    }

    [Fact]
    public void Each_team_thread_runs_the_body_once_with_its_own_index()
    {
        if (!OpenMpTeam.Available) return;
        var seen = new ConcurrentBag<(int Index, int Thread)>();
        OpenMpTeam.Run(3, i => seen.Add((i, Environment.CurrentManagedThreadId)));
        Assert.Equal([0, 1, 2], seen.Select(s => s.Index).Order());
        Assert.Equal(3, seen.Select(s => s.Thread).Distinct().Count());
        Assert.Contains((0, Environment.CurrentManagedThreadId), seen); // the caller is thread 0
    }

    [Fact]
    public void An_exception_on_a_team_thread_is_rethrown_to_the_caller()
    {
        if (!OpenMpTeam.Available) return;
        var error = Assert.Throws<InvalidOperationException>(() => OpenMpTeam.Run(2, i =>
        {
            if (i == 1) throw new InvalidOperationException("thread 1 failed");
        }));
        Assert.Equal("thread 1 failed", error.Message);
        var after = 0;
        OpenMpTeam.Run(2, _ => Interlocked.Increment(ref after));
        Assert.Equal(2, after);
    }
}
