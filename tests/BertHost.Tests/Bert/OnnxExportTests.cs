using BertHost.Benchmarks.Onnx;
using BertHost.Benchmarks.Suites;
using BertHost.Core.Bert;
using BertHost.Core.Text;
using BertHost.Tests.Support;
using BertHost.Core.Body;

namespace BertHost.Tests.Bert;

/// <summary>
/// The benchmarks' ONNX export: ONNX Runtime running the graph written from a loaded body gives that body's outputs
/// (last hidden state at real tokens, pooler output) within 1e-4 — what makes the host-vs-ORT timings comparable.
/// </summary>
public class OnnxExportTests
{
    [Theory]
    [InlineData("tiny-bert")]
    [InlineData("tiny-bert-no-pooler")]
    public void Onnx_runtime_on_the_exported_graph_matches_the_body(string model)
    {
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder(model));
        using var onnx = new OnnxBody(BertOnnxExporter.Export(body.Model), threads: 1);
        Assert.Equal(body.Model.HasPooler, onnx.HasPooler);
        var batch = PaddedBatch.Create(BodySuite.Synthetic(3, 20, body.Config.VocabSize, seed: 3, shortenSecond: 6), body.Tokenizer.PadTokenId);
        Assert.Equal(6, batch.Lengths[1]);
        var difference = OnnxParity.MaxDifference(body, onnx, batch);
        Assert.InRange(difference, 0, 1e-4);
    }
}
