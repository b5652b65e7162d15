using BertHost.Core.Checkpoints.Onnx;
using BertHost.Tests.Support;
using Google.Protobuf;
using Onnx;

namespace BertHost.Tests.Checkpoints.Onnx;

/// <summary>
/// Graphs that are not Hugging Face BERT exports get one error naming what is missing, and nothing is written. Most
/// are the opset-13 fixture with one part taken away, edited here with OnnxSharp's classes.
/// </summary>
public sealed class OnnxImportErrorTests : IDisposable
{
    private const string Fixture = "tiny-bert-pooler-opset13";
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-onnx-errors-");

    public void Dispose() => _dir.Delete(recursive: true);

    public static TheoryData<string, string> Damages => new()
    {
        { "drop initializer encoder.layer.1.output.LayerNorm.bias", "no initializer named encoder.layer.1.output.LayerNorm.bias" },
        { "drop initializer embeddings.token_type_embeddings.weight", "no initializer named embeddings.token_type_embeddings.weight" },
        { "flatten initializer embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight has shape [6480], not a matrix" },
        { "retype node /encoder/layer.0/attention/self/query/MatMul as Mul", "no MatMul feeds the Add of encoder.layer.0.attention.self.query.bias" },
        { "retype node /encoder/layer.1/intermediate/dense/Add as Sub", "no Add or Gemm consumes encoder.layer.1.intermediate.dense.bias" },
        { "retype node /encoder/layer.0/attention/self/Reshape as Identity", "no Reshape splits the output of encoder.layer.0.attention.self.query into attention heads (num_attention_heads)" },
        { "retype all Sqrt as Abs", "no Sqrt(variance + epsilon) leads to embeddings.LayerNorm.weight (layer_norm_eps)" },
        { "retype all Erf as Neg", "no activation (Erf, Tanh, Relu, Sigmoid or Gelu) follows encoder.layer.0.intermediate.dense (hidden_act)" },
    };

    [Theory]
    [MemberData(nameof(Damages))]
    public void A_graph_missing_a_part_of_bert_is_named(string damage, string missing)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(OnnxImportTests.Graph(Fixture)));
        var words = damage.Split(' ');
        var graph = model.Graph;
        switch (words[0])
        {
            case "drop":
                Assert.True(graph.Initializer.Remove(graph.Initializer.Single(t => t.Name == words[2])));
                break;
            case "flatten":
                var flattened = graph.Initializer.Single(t => t.Name == words[2]);
                var size = flattened.Dims.Aggregate(1L, (n, d) => n * d);
                flattened.Dims.Clear();
                flattened.Dims.Add(size);
                break;
            case "retype" when words[1] == "node":
                graph.Node.Single(n => n.Name == words[2]).OpType = words[4];
                break;
            case "retype":
                var nodes = graph.Node.Where(n => n.OpType == words[2]).ToList();
                Assert.NotEmpty(nodes);
                foreach (var n in nodes) n.OpType = words[4];
                break;
        }
        Assert.Equal($"damaged.onnx: not a Hugging Face BERT export: {missing}", Error(Write("damaged.onnx", model.ToByteArray())));
    }

    [Fact]
    public void Other_graphs_and_other_files_are_refused()
    {
        Assert.Equal("tiny-mlp.onnx: not a Hugging Face BERT export: no initializer named embeddings.word_embeddings.weight",
            Error(TestPaths.Fixture("onnx", "tiny-mlp.onnx")));
        Assert.StartsWith("vocab.txt: not an ONNX model (", Error(OnnxImportTests.Vocab));
        var graph = File.ReadAllBytes(OnnxImportTests.Graph(Fixture));
        Assert.StartsWith("truncated.onnx: not an ONNX model (", Error(Write("truncated.onnx", graph[..(graph.Length / 2)])));
        Assert.Equal("empty.onnx: not an ONNX model (no graph nodes)", Error(Write("empty.onnx", [])));

        var model = ModelProto.Parser.ParseFrom(graph);
        model.Graph.Initializer.Single(t => t.Name == "embeddings.position_embeddings.weight").DataType = (int)TensorProto.Types.DataType.Double;
        Assert.Equal("double.onnx: embeddings.position_embeddings.weight is Double; only float32 weights can be imported",
            Error(Write("double.onnx", model.ToByteArray())));
    }

    [Fact]
    public async Task The_cli_prints_one_line_and_fails_without_touching_other_folders()
    {
        var result = await CliRunner.RunAsync("import-onnx", "--input", TestPaths.Fixture("onnx", "tiny-mlp.onnx"), "--vocab", OnnxImportTests.Vocab, "--out", Out);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("berthost import-onnx: error: tiny-mlp.onnx: not a Hugging Face BERT export: no initializer named embeddings.word_embeddings.weight\n", result.Error);
        Assert.False(Directory.Exists(Out));

        result = await CliRunner.RunAsync("import-onnx", "--input", OnnxImportTests.Graph(Fixture), "--out", Out);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"berthost import-onnx: error: {Fixture}.onnx: carries no vocabulary; give one with --vocab\n", result.Error);

        result = await CliRunner.RunAsync("import-onnx", "--input", Path.Combine(_dir.FullName, "absent.onnx"), "--out", Out);
        Assert.Equal($"berthost import-onnx: error: {Path.Combine(_dir.FullName, "absent.onnx")}: file not found\n", result.Error);

        result = await CliRunner.RunAsync("import-onnx", "--input", "", "--out", Out);
        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith("berthost import-onnx: --input is empty", result.Error);

        result = await CliRunner.RunAsync("import-onnx", "--input", OnnxImportTests.Graph(Fixture), "--out", Out, "--lower-case", "yes");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--lower-case must be true or false, got 'yes'", result.Error);

        // A folder holding anything an import does not write is never replaced.
        var precious = Path.Combine(_dir.FullName, "home");
        Directory.CreateDirectory(precious);
        File.WriteAllText(Path.Combine(precious, "notes.md"), "mine");
        result = await CliRunner.RunAsync("import-onnx", "--input", OnnxImportTests.Graph(Fixture), "--vocab", OnnxImportTests.Vocab, "--out", precious);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("exists and holds 'notes.md', which an import does not write", result.Error);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(precious, "notes.md")));
        Assert.Single(Directory.GetFileSystemEntries(precious));
    }

    private string Out => Path.Combine(_dir.FullName, "out");

    private string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(_dir.FullName, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private string Error(string input)
    {
        var e = Assert.Throws<OnnxImportException>(() => OnnxBertImporter.Import(new OnnxImportOptions(input, Out, OnnxImportTests.Vocab)));
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(Directory.Exists(Out));
        return e.Message;
    }
}
