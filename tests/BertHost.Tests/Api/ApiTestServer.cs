using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using BertHost.Api;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace BertHost.Tests.Api;

/// <summary>The real server (Kestrel) on a free 127.0.0.1 port over a <see cref="FakeEngine"/>, with an HttpClient.</summary>
internal sealed class ApiTestServer : IAsyncDisposable
{
    public required WebApplication App { get; init; }
    public required HttpClient Client { get; init; }
    public required FakeEngine Engine { get; init; }
    public required ServingMetrics Metrics { get; init; }
    public required ListLoggerProvider Logs { get; init; }
    public required ApiOptions Options { get; init; }
    public required Uri BaseAddress { get; init; }

    public static async Task<ApiTestServer> StartAsync(Func<ApiOptions, ApiOptions>? configure = null, FakeEngine? engine = null)
    {
        var options = new ApiOptions
        {
            Urls = "http://127.0.0.1:0",
            MaxRequestBytes = 1 << 20,
            MaxInputsPerRequest = 64,
            ShutdownTimeout = TimeSpan.FromSeconds(10),
        };
        if (configure is not null) options = configure(options);
        engine ??= new FakeEngine();
        var metrics = new ServingMetrics();
        var logs = new ListLoggerProvider();
        var app = ApiServer.Build(options, engine, metrics, logs);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        var baseAddress = new Uri(address);
        Assert.Equal("127.0.0.1", baseAddress.Host);
        Assert.NotEqual(0, baseAddress.Port);
        var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
        return new ApiTestServer
        {
            App = app, Client = client, Engine = engine, Metrics = metrics, Logs = logs, Options = options, BaseAddress = baseAddress,
        };
    }

    public Task<HttpResponseMessage> PostJsonAsync(string path, string json) =>
        Client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }

    public static async Task<JsonElement> JsonOf(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }

    /// <summary>Asserts the status and the exact error shape; returns the message.</summary>
    public static async Task<string> AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status, string code, string? field = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(body);
        var root = doc.RootElement;
        Assert.Equal(JsonValueKind.Object, root.ValueKind);
        Assert.Equal(["error"], root.EnumerateObject().Select(p => p.Name));
        var error = root.GetProperty("error");
        Assert.Equal(["code", "message", "field"], error.EnumerateObject().Select(p => p.Name));
        Assert.Equal(code, error.GetProperty("code").GetString());
        var message = error.GetProperty("message").GetString();
        Assert.False(string.IsNullOrWhiteSpace(message));
        if (field is null) Assert.Equal(JsonValueKind.Null, error.GetProperty("field").ValueKind);
        else Assert.Equal(field, error.GetProperty("field").GetString());
        return message!;
    }
}

/// <summary>Collects log entries for assertions.</summary>
internal sealed class ListLoggerProvider : ILoggerProvider
{
    public sealed record Entry(string Category, LogLevel Level, string Message, Exception? Exception);

    public ConcurrentQueue<Entry> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, Entries);

    public void Dispose() { }

    private sealed class Logger(string category, ConcurrentQueue<Entry> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            entries.Enqueue(new Entry(category, logLevel, formatter(state, exception), exception));
    }
}
