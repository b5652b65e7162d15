using System.Diagnostics;

namespace BertHost.Tests.Support;

/// <summary>Runs the dotnet CLI that runs the tests (pack, new, build), for tests of what a developer does with it.</summary>
public static class DotnetCli
{
    /// <summary>The dotnet executable: the one hosting the test run when it says so, else dotnet on PATH.</summary>
    public static string Executable => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";

    /// <summary>Runs <paramref name="program"/> with <paramref name="arguments"/>; exit code and stdout + stderr. Killed after <paramref name="timeout"/> (default 3 minutes).</summary>
    public static async Task<(int ExitCode, string Log)> RunAsync(string program, IEnumerable<string> arguments, string? workingDirectory = null,
        TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} ran longer than {timeout ?? TimeSpan.FromMinutes(3)}");
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}
