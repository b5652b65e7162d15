using System.Text;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Plugins;
using BertHost.Tests.Support;
using static BertHost.Tests.Plugins.HeadTestSupport;
using BertHost.Core.Body;

namespace BertHost.Tests.Heads.MultipleChoice;

/// <summary>The multiple-choice plugin as the tests use it: loaded through PluginCatalog, never referenced.</summary>
internal static class McSupport
{
    public static string Plugin { get; } = Path.Combine(TestPaths.RepoRoot, "plugins", "BertHost.Heads.MultipleChoice");

    public static LoadedKind McKind => Kind(Plugin, "multiple-choice");

    public static string HfFolder { get; } = ReferenceOutputs.ModelFolder("tiny-bert-mc");

    public static IHead Head(string? options = null, string? weights = null, long seed = 42, bool truncate = true, BertBody? body = null)
    {
        var c = Context(body ?? TinyBert, kind: "multiple-choice", weights: weights, options: options, seed: seed);
        return McKind.CreateHead(truncate ? c : new HeadContext
        {
            Name = c.Name, Kind = c.Kind, Labels = c.Labels, WeightsPath = c.WeightsPath, Options = c.Options, Body = c.Body,
            Tokenizer = c.Tokenizer, Checkpoints = c.Checkpoints, Logger = c.Logger, Seed = c.Seed, TruncateOversized = false,
        });
    }

    public static HeadFeatures Encode(IHead head, string json) => head.Encode(Json(json), NoParameters);

    public static JsonNode PredictOne(IHead head, string json) => Predict(TinyBert, head, json)[0];

    public static string Write(string name, string content, bool bom = false)
    {
        var path = Path.Combine(TempFolder(), name);
        File.WriteAllText(path, content, new UTF8Encoding(bom));
        return path;
    }

    /// <summary>The plugin's gold label in <see cref="HeadFeatures.State"/>, by reflection.</summary>
    public static int? Label(HeadFeatures f) => (int?)f.State!.GetType().GetProperty("Label")!.GetValue(f.State);

    public static IReadOnlyList<string> Choices(HeadFeatures f) =>
        (IReadOnlyList<string>)f.State!.GetType().GetProperty("Choices")!.GetValue(f.State)!;
}
