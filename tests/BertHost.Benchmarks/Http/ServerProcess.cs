using System.Diagnostics;
using System.Text.RegularExpressions;
using BertHost.Benchmarks.Harness;

namespace BertHost.Benchmarks.Http;

/// <summary>
/// <c>berthost serve</c> as a child process on a free loopback port (the built executable, exactly what users run), so
/// its resident memory is its own and it is stopped (SIGTERM, then kill) when disposed.
/// </summary>
public sealed partial class ServerProcess : IDisposable
{
    private readonly Process _process;

    private ServerProcess(Process process, Uri url)
    {
        _process = process;
        Url = url;
    }

    public Uri Url { get; }

    public int Pid => _process.Id;

    /// <summary>Writes <paramref name="yaml"/> to <paramref name="configPath"/>, starts the host and waits until it listens.</summary>
    public static ServerProcess Start(string configPath, string yaml, TimeSpan? timeout = null)
    {
        File.WriteAllText(configPath, yaml);
        var exe = Path.Combine(Paths.RepoRoot(), "src", "BertHost", "bin", "Release", "net10.0", "berthost");
        if (!File.Exists(exe)) throw new FileNotFoundException($"{exe} not found: build the solution in Release first (dotnet build BertHost.sln -c Release)");
        var info = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "serve", "--config", configPath, "--urls", "http://127.0.0.1:0" }) info.ArgumentList.Add(a);
        var process = Process.Start(info)!;
        var stderr = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        var ready = Task.Run(() =>
        {
            while (process.StandardOutput.ReadLine() is { } line)
            {
                var m = ServingLine().Match(line);
                if (m.Success) return new Uri(m.Groups[1].Value);
            }
            return null;
        });
        if (!ready.Wait(timeout ?? TimeSpan.FromMinutes(3)) || ready.Result is null)
        {
            try { process.Kill(); } catch (InvalidOperationException) { }
            lock (stderr) throw new InvalidOperationException($"berthost did not start: {stderr.ToString().Trim()}");
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        _ = Task.Run(() => { while (process.StandardOutput.ReadLine() is not null) { } });
        return new ServerProcess(process, ready.Result);
    }

    /// <summary>
    /// RSS once the host has been idle long enough to hand its native heap's free memory back (its scheduler trims after
    /// 1 s without work): what a quiet daemon holds, so retained allocator space is not mistaken for a leak.
    /// </summary>
    public async Task<long> IdleResidentBytesAsync()
    {
        await Task.Delay(TimeSpan.FromSeconds(2));
        return ResidentBytes();
    }

    /// <summary>Resident set size (VmRSS) in bytes.</summary>
    public long ResidentBytes() => StatusBytes("VmRSS");

    /// <summary>A memory field of /proc/PID/status (VmRSS, RssAnon, VmHWM, ...) in bytes.</summary>
    public long StatusBytes(string field)
    {
        var line = File.ReadLines($"/proc/{_process.Id}/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            Process.Start("kill", ["-TERM", _process.Id.ToString()])?.WaitForExit();
            if (!_process.WaitForExit(15_000)) _process.Kill();
        }
        _process.Dispose();
    }

    [GeneratedRegex(@"serving \d+ of \d+ heads on (http://\S+?)(,|$)")]
    private static partial Regex ServingLine();
}
