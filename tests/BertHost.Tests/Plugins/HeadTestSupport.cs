using System.Text.Json;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Plugins;
using BertHost.Core.Text;
using BertHost.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using BertHost.Core.Body;

namespace BertHost.Tests.Plugins;

/// <summary>
/// Plugins as the tests use them: built (build order only, never referenced for compile) into their own project
/// folders and loaded through <see cref="PluginCatalog"/>; head contexts built from a real <see cref="BertBody"/>.
/// </summary>
public static class HeadTestSupport
{
    public static string ClassificationPlugin { get; } = Path.Combine(TestPaths.RepoRoot, "plugins", "BertHost.Heads.Classification");
    public static string EmbeddingPlugin { get; } = Path.Combine(TestPaths.RepoRoot, "plugins", "BertHost.Heads.Embedding");
    public static string TestHeadsPlugin { get; } = Path.Combine(TestPaths.RepoRoot, "tests", "Plugins", "BertHost.TestHeads");
    public static string DuplicatePlugin { get; } = Path.Combine(TestPaths.RepoRoot, "tests", "Plugins", "BertHost.TestHeads.Duplicate");

    /// <summary>One catalog for the tests that only need kinds (each catalog loads an assembly into its own context).</summary>
    public static PluginCatalog SharedCatalog { get; } = new(NullLogger.Instance);

    public static LoadedKind Kind(string plugin, string kind) => SharedCatalog.Resolve(plugin, null, kind);

    public static LoadedKind TextClassification => Kind(ClassificationPlugin, "text-classification");

    private static readonly Lazy<BertBody> TinyBertBody = new(() => BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { Device = "cpu" }));

    /// <summary>tiny-bert on the CPU, shared by the head tests (read-only: eval, no grad).</summary>
    public static BertBody TinyBert => TinyBertBody.Value;

    public static BodyInfo InfoOf(BertBody body) => body.Info;

    public static HeadContext Context(BertBody body, string kind = "text-classification", string name = "test-head",
        IReadOnlyList<string>? labels = null, string? weights = null, string? options = null, long seed = 42) => new()
    {
        Name = name,
        Kind = kind,
        Labels = labels,
        WeightsPath = weights,
        Options = options is null ? JsonDocument.Parse("{}").RootElement.Clone() : JsonDocument.Parse(options).RootElement.Clone(),
        Body = InfoOf(body),
        Tokenizer = body.Tokenizer,
        Checkpoints = new CheckpointStore(Path.Combine(body.Folder, "vocab.txt")),
        Logger = NullLogger.Instance,
        Seed = seed,
    };

    public static JsonElement Json(string json) => JsonDocument.Parse(json).RootElement.Clone();

    public static readonly JsonElement NoParameters = Json("{}");

    /// <summary>Encodes the inputs, runs the body once and the head on its output, and returns (batch, logits).</summary>
    public static (HeadBatch Batch, TorchSharp.torch.Tensor Logits) Run(BertBody body, IHead head, IEnumerable<HeadFeatures> features)
    {
        var items = features.ToList();
        var batch = new HeadBatch(items, body.Device);
        var requirements = head.Requirements;
        using var output = body.Forward(PaddedBatch.Create(items.SelectMany(f => f.Sequences).ToList(), body.Tokenizer.PadTokenId),
            outputHiddenStates: requirements.NeedsHiddenStates);
        using var noGrad = TorchSharp.torch.no_grad();
        return (batch, head.Forward(output, batch));
    }

    public static IReadOnlyList<System.Text.Json.Nodes.JsonNode> Predict(BertBody body, IHead head, params string[] inputs) =>
        Predict(body, head, NoParameters, inputs);

    public static IReadOnlyList<System.Text.Json.Nodes.JsonNode> Predict(BertBody body, IHead head, JsonElement parameters, params string[] inputs)
    {
        var (batch, logits) = Run(body, head, inputs.Select(i => head.Encode(Json(i), parameters)));
        using (logits) return head.Decode(logits, batch);
    }

    public static string TempFolder()
    {
        var path = Path.Combine(Path.GetTempPath(), "berthost-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }
}
