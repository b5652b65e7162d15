using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;
using BertHost.Core.Bert;
using BertHost.Core.Plugins;
using static TorchSharp.torch;

namespace BertHost.Core.Config;

/// <summary>
/// <c>berthost validate</c>'s head checks: loads each head's plugin (through <paramref name="catalog"/>), finds its kind
/// (a misspelt kind gets "did you mean") and asks the kind to <see cref="IHeadKind.Validate"/> the head's options and
/// labels against the body as its config.json describes it. Nothing is built and no weights are read.
/// </summary>
public sealed class PluginHeadValidator(PluginCatalog catalog) : IHeadConfigValidator
{
    private readonly Dictionary<string, BodyInfo?> _bodies = new(StringComparer.Ordinal);

    public IReadOnlyList<(string Field, string Message)> Validate(BodySection body, HeadSection head)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(head);
        LoadedKind kind;
        try
        {
            kind = catalog.Resolve(head.Plugin, head.Sha256, head.Kind);
        }
        catch (PluginLoadException e)
        {
            return [KindProblem(head, e)];
        }

        // A body the file names but that cannot be described is reported on body.checkpoint by the reader.
        if (BodyOf(body) is not { } info) return [];
        var context = new HeadValidationContext
        {
            Name = head.Name, Kind = head.Kind, Labels = head.Labels, WeightsPath = head.Weights, Options = head.Options, Body = info,
        };
        try
        {
            return kind.Kind.Validate(context).Select(p => (p.Field, p.Message)).ToList();
        }
        catch (Exception e)
        {
            // A bug in the plugin's checks: say whose, and go on with the other heads.
            return [("kind", $"head kind '{head.Kind}' ({kind.AssemblyPath}) failed to validate head '{head.Name}': {e.GetType().Name}: {e.Message}")];
        }
    }

    /// <summary>A plugin that loads but lacks the kind: on <c>kind</c>, with the closest kind it offers; else on <c>plugin</c>.</summary>
    private (string, string) KindProblem(HeadSection head, PluginLoadException e)
    {
        IReadOnlyList<LoadedKind> offered;
        try
        {
            offered = catalog.KindsIn(head.Plugin, head.Sha256);
        }
        catch (PluginLoadException)
        {
            return ("plugin", e.Message);
        }
        var names = offered.Select(k => k.Name).ToList();
        var suggestion = Suggestions.Closest(head.Kind, names);
        return ("kind", $"{e.Message}{(suggestion is null ? "" : $"; did you mean '{suggestion}'?")}");
    }

    private BodyInfo? BodyOf(BodySection body)
    {
        if (_bodies.TryGetValue(body.Checkpoint, out var known)) return known;
        BodyInfo? info = null;
        try
        {
            // Parsed, not validated: the sizes heads are checked against are all validate needs of it.
            var config = BertConfig.Parse(File.ReadAllText(Path.Combine(body.Checkpoint, "config.json")));
            info = new BodyInfo
            {
                ModelFolder = body.Checkpoint,
                HiddenSize = config.HiddenSize,
                NumHiddenLayers = config.NumHiddenLayers,
                MaxSequenceLength = Math.Min(config.MaxPositionEmbeddings, body.MaxSequenceLength ?? int.MaxValue),
                HasPooler = true,   // unknown without reading the weights; serving checks it
                Fingerprint = "",
                Device = CPU,
                DType = ScalarType.Float32,
                HiddenDropoutProb = config.HiddenDropoutProb,
                InitializerRange = config.InitializerRange,
            };
        }
        catch (Exception e) when (e is BertConfigException or System.Text.Json.JsonException or IOException or UnauthorizedAccessException)
        {
        }
        _bodies[body.Checkpoint] = info;
        return info;
    }
}
