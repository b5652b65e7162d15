using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Plugins;
using BertHost.Tests.Support;
using static BertHost.Tests.Plugins.HeadTestSupport;
using BertHost.Core.Body;

namespace BertHost.Tests.Heads.TokenClassification;

/// <summary>The token-classification plugin as the tests use it: loaded through PluginCatalog, never referenced.</summary>
public static class TokenClassificationSupport
{
    public static string TokenClassificationPlugin { get; } = Path.Combine(TestPaths.RepoRoot, "plugins", "BertHost.Heads.TokenClassification");

    public static LoadedKind NerKind => Kind(TokenClassificationPlugin, "token-classification");

    private static readonly Lazy<Core.Body.BertBody> TokClsBodyValue = new(() =>
        Core.Body.BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert-tokcls"), new Core.Body.BodyOptions { Device = "cpu" }));

    /// <summary>The body of the tiny-bert-tokcls folder (tiny-bert's weights without the pooler), shared read-only.</summary>
    public static Core.Body.BertBody TokClsBody => TokClsBodyValue.Value;

    public static readonly string[] Ner = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"];

    public static IHead FreshNer(string? options = null, IReadOnlyList<string>? labels = null, long seed = 42) =>
        NerKind.CreateHead(Context(TinyBert, kind: "token-classification", labels: labels ?? Ner, options: options, seed: seed));

    public static string Write(string name, string content)
    {
        var path = Path.Combine(TempFolder(), name);
        File.WriteAllText(path, content);
        return path;
    }

    /// <summary>
    /// Logits [rows, T, labels] for the windows of <paramref name="features"/>: each position gets a large logit (10) on
    /// the label <paramref name="pick"/> chooses for its token (window, position), others 0, padding 0.
    /// </summary>
    public static TorchSharp.torch.Tensor HandLogits(IReadOnlyList<HeadFeatures> features, int labels, Func<Abstractions.Text.EncodedSequence, int, int> pick, float high = 10f)
    {
        var sequences = features.SelectMany(f => f.Sequences).ToList();
        var t = sequences.Max(s => s.Length);
        var values = new float[sequences.Count * t * labels];
        for (var r = 0; r < sequences.Count; r++)
            for (var p = 0; p < sequences[r].Length; p++)
                values[(r * t + p) * labels + pick(sequences[r], p)] = high;
        return TorchSharp.torch.tensor(values, [sequences.Count, t, labels]);
    }

    public static JsonArray DecodeOne(IHead head, HeadFeatures f, TorchSharp.torch.Tensor logits) =>
        head.Decode(logits, new HeadBatch([f], TorchSharp.torch.CPU))[0].AsArray();

    public static JsonElement Params(string json) => Json(json);

    public static List<(string Label, string Word, int Start, int End)> Spans(JsonArray entities, string key = "entity_group") =>
        entities.Select(e => ((string)e![key]!, (string)e["word"]!, (int)e["start"]!, (int)e["end"]!)).ToList();
}
