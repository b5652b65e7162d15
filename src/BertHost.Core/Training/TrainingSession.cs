using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Config;
using BertHost.Core.Plugins;
using BertHost.Core.Serving;
using Microsoft.Extensions.Logging;

namespace BertHost.Core.Training;

/// <summary>
/// A deployment's body and ONE of its heads, loaded as the serving engine loads them (same plugin catalog, checkpoint
/// store and head context), for training or evaluating that head.
/// </summary>
public sealed class TrainingSession : IDisposable
{
    private readonly PluginCatalog _plugins;

    private TrainingSession(BertBody body, IHead head, HeadSection section, PluginCatalog plugins)
    {
        Body = body;
        Head = head;
        Section = section;
        _plugins = plugins;
    }

    public BertBody Body { get; }
    public IHead Head { get; }
    public HeadSection Section { get; }

    /// <summary>Loads the body and head <paramref name="headName"/>; a head that cannot be built throws <see cref="HeadLoadException"/>.</summary>
    public static TrainingSession Open(HostConfig config, string headName, ILoggerFactory loggers)
    {
        var section = config.Heads.FirstOrDefault(h => string.Equals(h.Name, headName, StringComparison.OrdinalIgnoreCase))
            ?? throw new HeadLoadException($"no head named '{headName}' in {config.SourcePath} (heads: {string.Join(", ", config.Heads.Select(h => h.Name))})");
        var body = DeploymentLoading.LoadBody(config);
        var plugins = new PluginCatalog(loggers.CreateLogger<PluginCatalog>());
        try
        {
            var kind = plugins.Resolve(section.Plugin, section.Sha256, section.Kind);
            var head = kind.CreateHead(DeploymentLoading.ContextFor(config, section, body, DeploymentLoading.CheckpointStoreFor(body), loggers));
            if (head.Training is null)
            {
                head.Dispose();
                throw new HeadLoadException($"head '{section.Name}' ({section.Kind}) does not support training");
            }
            return new TrainingSession(body, head, section, plugins);
        }
        catch (Exception e)
        {
            plugins.Dispose();
            body.Dispose();
            if (e is HeadLoadException) throw;
            var why = e is HeadConfigurationException c ? $"{c.Field}: {c.Message}" : e.Message;
            throw new HeadLoadException($"head '{section.Name}' cannot be loaded: {why}", e);
        }
    }

    public void Dispose()
    {
        Head.Dispose();
        _plugins.Dispose();
        Body.Dispose();
    }
}

/// <summary>The head to train cannot be found or built; the message says why.</summary>
public sealed class HeadLoadException(string message, Exception? inner = null) : Exception(message, inner);
