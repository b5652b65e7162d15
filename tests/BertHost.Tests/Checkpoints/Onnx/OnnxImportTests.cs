using System.Text;
using System.Text.Json;
using BertHost.Benchmarks.Onnx;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Checkpoints.Onnx;
using BertHost.Core.Text;
using BertHost.Tests.Support;
using BertHost.Core.Body;

namespace BertHost.Tests.Checkpoints.Onnx;

/// <summary>
/// import-onnx on torch.onnx exports of tiny random BERT bodies (tests/reference/make_onnx_fixtures.py): the folder it
/// writes has the config the graph was built with, and the host's body loaded from it gives what ONNX Runtime gives
/// on the original graph.
/// </summary>
public sealed class OnnxImportTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-onnx-");

    public void Dispose() => _dir.Delete(recursive: true);

    public static string Graph(string name) => TestPaths.Fixture("onnx", name + ".onnx");

    public static string Vocab { get; } = Path.Combine(ReferenceOutputs.ModelFolder("tiny-bert"), "vocab.txt");

    [Theory]
    [InlineData("tiny-bert-pooler-opset13")]
    [InlineData("tiny-bert-opset11")]
    public void The_config_is_the_one_the_graph_was_built_with(string name)
    {
        var folder = Import(name);
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("onnx", "expected.json")));
        var expected = doc.RootElement.GetProperty(name);
        var config = BertConfig.Load(Path.Combine(folder, "config.json"));
        Assert.Equal(expected.GetProperty("vocab_size").GetInt32(), config.VocabSize);
        Assert.Equal(expected.GetProperty("hidden_size").GetInt32(), config.HiddenSize);
        Assert.Equal(expected.GetProperty("num_hidden_layers").GetInt32(), config.NumHiddenLayers);
        Assert.Equal(expected.GetProperty("num_attention_heads").GetInt32(), config.NumAttentionHeads);
        Assert.Equal(expected.GetProperty("intermediate_size").GetInt32(), config.IntermediateSize);
        Assert.Equal(expected.GetProperty("max_position_embeddings").GetInt32(), config.MaxPositionEmbeddings);
        Assert.Equal(expected.GetProperty("type_vocab_size").GetInt32(), config.TypeVocabSize);
        Assert.Equal(expected.GetProperty("layer_norm_eps").GetDouble(), config.LayerNormEps);
        Assert.Equal(expected.GetProperty("hidden_act").GetString(), config.HiddenAct);
        using var tokenizerConfig = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer_config.json")));
        Assert.True(tokenizerConfig.RootElement.GetProperty("do_lower_case").GetBoolean());
        Assert.Equal(config.MaxPositionEmbeddings, tokenizerConfig.RootElement.GetProperty("model_max_length").GetInt32());
        Assert.Equal(File.ReadAllBytes(Vocab), File.ReadAllBytes(Path.Combine(folder, "vocab.txt")));
    }

    [Theory]
    [InlineData("tiny-bert-pooler-opset13", true)]
    [InlineData("tiny-bert-opset11", false)]
    public void The_imported_body_gives_what_onnx_runtime_gives_on_the_graph(string name, bool pooler)
    {
        using var body = BertBody.Load(Import(name));
        using var onnx = new OnnxBody(File.ReadAllBytes(Graph(name)), threads: 1);
        Assert.Equal(pooler, body.Model.HasPooler);
        Assert.Equal(pooler, onnx.HasPooler);
        var batch = Batch(body.Tokenizer);
        Assert.Contains(1L, batch.TokenTypeIds);
        Assert.Contains(0L, batch.AttentionMask);
        Assert.InRange(OnnxParity.MaxDifference(body, onnx, batch), 0, 1e-4);
    }

    /// <summary>A sentence pair (token types 0 and 1) beside single sentences of other lengths (padding).</summary>
    public static PaddedBatch Batch(BertTextTokenizer tokenizer) => PaddedBatch.Create(
    [
        tokenizer.Encode("the dog is very happy today", "she said no")[0],
        tokenizer.Encode("we will see what happens in the city next week")[0],
        tokenizer.Encode("hello world")[0],
    ], tokenizer.PadTokenId);

    [Fact]
    public void Crlf_vocabularies_are_written_with_lf_and_cased_ones_are_not_lower_cased()
    {
        var crlf = Path.Combine(_dir.FullName, "crlf-vocab.txt");
        File.WriteAllText(crlf, File.ReadAllText(Vocab).Replace("\n", "\r\n"));
        var folder = Path.Combine(_dir.FullName, "crlf");
        var result = OnnxBertImporter.Import(new OnnxImportOptions(Graph("tiny-bert-pooler-opset13"), folder, crlf));
        Assert.Equal(File.ReadAllBytes(Vocab), File.ReadAllBytes(Path.Combine(folder, "vocab.txt")));
        Assert.True(result.LowerCase);

        // The same vocabulary with capitalised words (as bert-base-cased has) is taken as cased.
        var cased = Path.Combine(_dir.FullName, "cased-vocab.txt");
        File.WriteAllLines(cased, File.ReadAllLines(Vocab).Select((t, i) => i % 10 == 9 && t.All(char.IsLetter) ? char.ToUpperInvariant(t[0]) + t[1..] : t));
        result = OnnxBertImporter.Import(new OnnxImportOptions(Graph("tiny-bert-pooler-opset13"), Path.Combine(_dir.FullName, "cased"), cased));
        Assert.False(result.LowerCase);
        Assert.False(BertTextTokenizer.FromFolder(Path.Combine(_dir.FullName, "cased")).Settings.DoLowerCase);
        // ...unless told otherwise.
        result = OnnxBertImporter.Import(new OnnxImportOptions(Graph("tiny-bert-pooler-opset13"), Path.Combine(_dir.FullName, "cased"), cased, LowerCase: true));
        Assert.True(result.LowerCase);
    }

    [Fact]
    public async Task The_cli_verb_imports_and_says_what_it_found()
    {
        var folder = Path.Combine(_dir.FullName, "cli");
        var result = await CliRunner.RunAsync("import-onnx", "--input", Graph("tiny-bert-opset11"), "--vocab", Vocab, "--out", folder);
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("3 layers, hidden 16, 2 heads, intermediate 24, gelu, layer_norm_eps 1E-05, vocab 405, no pooler, uncased", result.Out);
        Assert.Equal(OnnxBertImporter.WrittenFiles.Order(), Directory.GetFiles(folder).Select(Path.GetFileName).Order());

        // Importing again replaces the earlier import.
        result = await CliRunner.RunAsync("import-onnx", "--input", Graph("tiny-bert-pooler-opset13"), "--vocab", Vocab, "--out", folder);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(2, BertConfig.Load(Path.Combine(folder, "config.json")).NumHiddenLayers);
    }

    [Fact]
    public void Weights_come_out_as_stored_in_the_graph()
    {
        // The tensors themselves, against the graph read independently of the importer's mapping: the named
        // embedding table as is, and the query projection's [in, out] initializer (the MatMul's operand) transposed.
        var folder = Import("tiny-bert-pooler-opset13");
        var graph = OnnxGraph.Parse("graph", File.ReadAllBytes(Graph("tiny-bert-pooler-opset13")));
        using var source = CheckpointFiles.OpenFolder(folder);
        using var words = source.Read("embeddings.word_embeddings.weight");
        Assert.Equal(graph.Floats(graph.Initializer("embeddings.word_embeddings.weight")!, "words"), words.data<float>().ToArray());
        var matMul = graph.Model.Graph.Node.Single(n => n.Name == "/encoder/layer.0/attention/self/query/MatMul");
        var stored = graph.Initializer(matMul.Input[1])!;
        Assert.Equal([16L, 16L], OnnxGraph.Shape(stored));
        var values = graph.Floats(stored, "query");
        using var query = source.Read("encoder.layer.0.attention.self.query.weight");
        var imported = query.data<float>().ToArray();
        for (var o = 0; o < 16; o++)
            for (var i = 0; i < 16; i++)
                Assert.Equal(values[i * 16 + o], imported[o * 16 + i]);
    }

    private string Import(string name)
    {
        var folder = Path.Combine(_dir.FullName, name);
        OnnxBertImporter.Import(new OnnxImportOptions(Graph(name), folder, Vocab));
        return folder;
    }
}
