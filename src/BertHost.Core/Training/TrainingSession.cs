using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Config;
using BertHost.Core.Plugins;
using BertHost.Core.Deployments;
using Microsoft.Extensions.Logging;
using BertHost.Core.Body;

namespace BertHost.Core.Training;

/// <summary>
/// A deployment's body and the heads to train (one, or several for a multitask run), loaded as the serving engine loads
/// them (same plugin catalog, checkpoint store and head contexts), for training or evaluating them.
/// </summary>
public sealed class TrainingSession : IDisposable
{
    private readonly PluginCatalog _plugins;

    private TrainingSession(BertBody body, IReadOnlyList<IHead> heads, IReadOnlyList<HeadSection> sections, PluginCatalog plugins,
        Dictionary<string, Lora.LoraAdapter> adapters)
    {
        Adapters = adapters;
        Body = body;
        Heads = heads;
        Sections = sections;
        _plugins = plugins;
    }

    public BertBody Body { get; }

    /// <summary>The body adapters of the heads whose weights are LoRA head folders, by head name (owned by the session).</summary>
    public IReadOnlyDictionary<string, Lora.LoraAdapter> Adapters { get; }
    public IReadOnlyList<IHead> Heads { get; }
    public IReadOnlyList<HeadSection> Sections { get; }

    /// <summary>The first (for a single-head session, the only) head.</summary>
    public IHead Head => Heads[0];

    public HeadSection Section => Sections[0];

    /// <summary>Loads the body and head <paramref name="headName"/>; a head that cannot be built throws <see cref="HeadLoadException"/>.</summary>
    public static TrainingSession Open(HostConfig config, string headName, ILoggerFactory loggers) => Open(config, [headName], loggers);

    /// <summary>Loads the body and the heads <paramref name="headNames"/> (each once); a head that cannot be built throws <see cref="HeadLoadException"/>.</summary>
    /// <param name="asServed">Load the body as <c>serve</c> does (<c>body.quantize</c>, prepacked weights): to evaluate
    /// heads on the body they will be served from, never to train it.</param>
    /// <param name="prepack">Prepack the body's weights (<c>body.prepack_weights</c>) as serving does, without
    /// quantizing: for head-mode training, whose frozen body only computes features.</param>
    public static TrainingSession Open(HostConfig config, IReadOnlyList<string> headNames, ILoggerFactory loggers, bool asServed = false, bool prepack = false)
    {
        var sections = new List<HeadSection>();
        foreach (var headName in headNames)
        {
            var section = config.Heads.FirstOrDefault(h => string.Equals(h.Name, headName, StringComparison.OrdinalIgnoreCase))
                ?? throw new HeadLoadException($"no head named '{headName}' in {config.SourcePath} (heads: {string.Join(", ", config.Heads.Select(h => h.Name))})");
            if (sections.Contains(section)) throw new HeadLoadException($"head '{section.Name}' is named more than once");
            sections.Add(section);
        }
        var deployment = Deployment.FromConfig(config);
        var body = deployment.LoadBody(forServing: asServed, prepack: prepack);
        var plugins = new PluginCatalog(loggers.CreateLogger<PluginCatalog>());
        var heads = new List<IHead>();
        var adapters = new Dictionary<string, Lora.LoraAdapter>(StringComparer.Ordinal);
        HeadSection? current = null;
        try
        {
            foreach (var section in sections)
            {
                current = section;
                var kind = plugins.Resolve(section.Plugin, section.Sha256, section.Kind);
                var head = kind.CreateHead(deployment.ContextFor(section, body, Deployment.CheckpointStoreFor(body), loggers));
                heads.Add(head);
                if (head.Training is null) throw new HeadLoadException($"head '{section.Name}' ({section.Kind}) does not support training");
                if (section.Weights is { } weights && Directory.Exists(weights) && Lora.LoraHeadFolder.Read(weights, body.Model) is { } adapter)
                    adapters[head.Name] = adapter;
            }
            return new TrainingSession(body, heads, sections, plugins, adapters);
        }
        catch (Exception e)
        {
            foreach (var head in heads) head.Dispose();
            foreach (var adapter in adapters.Values) adapter.Dispose();
            plugins.Dispose();
            body.Dispose();
            if (e is HeadLoadException) throw;
            var why = e is HeadConfigurationException c ? $"{c.Field}: {c.Message}" : e.Message;
            throw new HeadLoadException($"head '{current?.Name}' cannot be loaded: {why}", e);
        }
    }

    public void Dispose()
    {
        foreach (var head in Heads) head.Dispose();
        foreach (var adapter in Adapters.Values) adapter.Dispose();
        _plugins.Dispose();
        Body.Dispose();
    }
}

/// <summary>The head to train cannot be found or built; the message says why.</summary>
public sealed class HeadLoadException(string message, Exception? inner = null) : Exception(message, inner);
