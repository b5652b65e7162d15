namespace BertHost.Tests.Support;

/// <summary>
/// Waits that end: a test that waits for the host must fail with a message instead of hanging when what it waits
/// for never happens. The bound is generous (a slow CI machine is not a failure); it guards against hangs, it does not
/// measure speed.
/// </summary>
public static class Waits
{
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(60);

    /// <summary><paramref name="task"/>'s result, or a failure naming <paramref name="what"/> if it has not finished within <see cref="HangGuard"/>.</summary>
    public static async Task<T> Within<T>(Task<T> task, string what)
    {
        await Within((Task)task, what);
        return await task;
    }

    public static async Task Within(Task task, string what)
    {
        if (await Task.WhenAny(task, Task.Delay(HangGuard)) != task)
            throw new TimeoutException($"{what} did not finish within {HangGuard.TotalSeconds:F0} s");
        await task;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds, failing with <paramref name="what"/> after <see cref="HangGuard"/>.</summary>
    public static async Task Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + HangGuard;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"waited {HangGuard.TotalSeconds:F0} s for {what}");
            await Task.Delay(10);
        }
    }
}
