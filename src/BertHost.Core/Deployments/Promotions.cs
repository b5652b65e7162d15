using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Core.Checkpoints;
using Microsoft.Extensions.Logging;

namespace BertHost.Core.Deployments;

/// <summary>A job's output that serves in place of the deployment's own: a head's weights folder or the body's model folder.</summary>
public sealed record Promotion(string Path, string Job, DateTimeOffset At);

/// <summary>
/// What training jobs promoted (<c>promoted.json</c> in the jobs directory): the body folder and, per head, the weights
/// folder that serve instead of the YAML's. The engine honours it when it loads, so a restart serves what was promoted.
/// </summary>
public sealed record Promotions
{
    public const string FileName = "promoted.json";

    public Promotion? Body { get; init; }
    public IReadOnlyDictionary<string, Promotion> Heads { get; init; } = new Dictionary<string, Promotion>(StringComparer.OrdinalIgnoreCase);

    /// <summary>The promotions in <paramref name="jobsDirectory"/>; none when the file is absent. A file that cannot be read is logged and ignored (the YAML's body and heads serve).</summary>
    public static Promotions Load(string jobsDirectory, ILogger logger)
    {
        var path = Path.Combine(jobsDirectory, FileName);
        if (!File.Exists(path)) return new Promotions();
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            var heads = new Dictionary<string, Promotion>(StringComparer.OrdinalIgnoreCase);
            if (root["heads"] is JsonObject h)
                foreach (var (name, value) in h) heads[name] = Read(value!);
            return new Promotions { Body = root["body"] is { } b ? Read(b) : null, Heads = heads };
        }
        catch (Exception e) when (e is JsonException or IOException or InvalidOperationException or NullReferenceException or UnauthorizedAccessException)
        {
            logger.LogError("{Path} cannot be read ({Reason}); serving the deployment's own body and heads", path, e.Message);
            return new Promotions();
        }
    }

    public Promotions WithHead(string head, Promotion promotion)
    {
        var heads = new Dictionary<string, Promotion>(Heads, StringComparer.OrdinalIgnoreCase) { [head] = promotion };
        return this with { Heads = heads };
    }

    /// <summary>Adds what job <paramref name="job"/> just swapped in (a body and/or head weights) to the file in <paramref name="jobsDirectory"/>, so that a restart serves the same. The job runner runs one promotion at a time.</summary>
    public static void Record(string jobsDirectory, string job, string? body, IReadOnlyDictionary<string, string> heads, ILogger logger)
    {
        var now = DateTimeOffset.UtcNow;
        var promotions = Load(jobsDirectory, logger);
        foreach (var (name, folder) in heads) promotions = promotions.WithHead(name, new Promotion(folder, job, now));
        if (body is not null) promotions = promotions with { Body = new Promotion(body, job, now) };
        promotions.Save(jobsDirectory);
    }

    public void Save(string jobsDirectory)
    {
        var heads = new JsonObject();
        foreach (var (name, p) in Heads.OrderBy(kv => kv.Key, StringComparer.Ordinal)) heads[name] = Write(p);
        var root = new JsonObject { ["body"] = Body is null ? null : Write(Body), ["heads"] = heads };
        AtomicFile.WriteAllText(Path.Combine(jobsDirectory, FileName), root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    private static Promotion Read(JsonNode node) =>
        new((string)node["path"]!, (string)node["job"]!, DateTimeOffset.Parse((string)node["at"]!, System.Globalization.CultureInfo.InvariantCulture));

    private static JsonObject Write(Promotion p) => new()
    {
        ["path"] = p.Path,
        ["job"] = p.Job,
        ["at"] = p.At.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
    };
}
