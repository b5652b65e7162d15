using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;

namespace BertHost.Benchmarks.Http;

/// <summary>
/// Closed-loop clients: each sends its next "operation" as soon as the previous one is answered. An operation is one
/// or several requests sent at once (four single-head requests for the same text count as one operation, done when
/// the last answer arrives). Every answer must be 200.
/// </summary>
public sealed class LoadGenerator(Uri server, int clients)
{
    private readonly HttpClient _http = new(new SocketsHttpHandler { MaxConnectionsPerServer = Math.Max(clients * 4, 4), PooledConnectionLifetime = Timeout.InfiniteTimeSpan })
    {
        BaseAddress = server,
        Timeout = TimeSpan.FromMinutes(2),
    };

    public sealed record Result(int Operations, double Seconds, double[] LatenciesSeconds);

    /// <param name="operation">For client i and its n-th operation: the (path, JSON body) requests to send together.</param>
    public async Task<Result> RunAsync(Func<int, int, (string Path, string Json)[]> operation, TimeSpan warmup, TimeSpan duration, int? maxOperations = null)
    {
        await RunPhase(operation, warmup, null, _ => { });
        var latencies = new List<double>();
        var start = Stopwatch.GetTimestamp();
        var count = await RunPhase(operation, duration, maxOperations, l => { lock (latencies) latencies.Add(l); });
        return new Result(count, Stopwatch.GetElapsedTime(start).TotalSeconds, latencies.ToArray());
    }

    private async Task<int> RunPhase(Func<int, int, (string Path, string Json)[]> operation, TimeSpan duration, int? maxOperations, Action<double> record)
    {
        var end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var done = 0;
        var tasks = Enumerable.Range(0, clients).Select(async client =>
        {
            for (var n = 0; Stopwatch.GetTimestamp() < end; n++)
            {
                if (maxOperations is { } max && Interlocked.Increment(ref done) > max) break;
                var started = Stopwatch.GetTimestamp();
                await Task.WhenAll(operation(client, n).Select(r => SendAsync(r.Path, r.Json)));
                record(Stopwatch.GetElapsedTime(started).TotalSeconds);
                if (maxOperations is null) Interlocked.Increment(ref done);
            }
        });
        await Task.WhenAll(tasks);
        return maxOperations is { } m ? Math.Min(done, m) : done;
    }

    public async Task<string> SendAsync(string path, string json)
    {
        using var content = new StringContent(json, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await _http.PostAsync(path, content);
        var body = await response.Content.ReadAsStringAsync();
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"POST {path}: {(int)response.StatusCode} {body}");
        return body;
    }
}
