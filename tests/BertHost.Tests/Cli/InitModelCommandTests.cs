using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Tests.Support;
using static TorchSharp.torch;
using BertHost.Core.Body;

namespace BertHost.Tests.Cli;

public sealed class InitModelCommandTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-init-");
    private static readonly string Vocab = ReferenceOutputs.ModelFolder("tiny-bert");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public async Task Creates_a_loadable_folder_whose_weights_follow_the_seed()
    {
        var a = Path.Combine(_dir.FullName, "a");
        var b = Path.Combine(_dir.FullName, "b");
        var c = Path.Combine(_dir.FullName, "c");
        var result = await CliRunner.RunAsync("init-model", "--size", "tiny", "--vocab", Vocab, "--out", a, "--seed", "7");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("2 layers, hidden 128, 2 heads, vocab 405", result.Out);
        await CliRunner.RunAsync("init-model", "--size", "tiny", "--vocab", Vocab, "--out", b, "--seed", "7");
        await CliRunner.RunAsync("init-model", "--size", "tiny", "--vocab", Vocab, "--out", c, "--seed", "8");

        using var bodyA = BertBody.Load(a);
        using var bodyB = BertBody.Load(b);
        using var bodyC = BertBody.Load(c);
        Assert.Equal(bodyA.Fingerprint, bodyB.Fingerprint);
        Assert.NotEqual(bodyA.Fingerprint, bodyC.Fingerprint);
        Assert.Equal(File.ReadAllBytes(Path.Combine(Vocab, "vocab.txt")), File.ReadAllBytes(Path.Combine(a, "vocab.txt")));
        // config.json holds only transformers' fields (no derived values such as the head size).
        Assert.DoesNotContain("HeadDim", File.ReadAllText(Path.Combine(a, "config.json")));
        Assert.Contains("\"num_attention_heads\": 2", File.ReadAllText(Path.Combine(a, "config.json")));

        // transformers' initialisation: N(0, 0.02) weights, zero biases, LayerNorm (1, 0), zero padding embedding.
        var p = bodyA.Model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        var std = p["encoder.layer.0.intermediate.dense.weight"].std().item<float>();
        Assert.InRange(std, 0.019, 0.021);
        Assert.Equal(0, p["encoder.layer.0.intermediate.dense.bias"].abs().max().item<float>());
        Assert.Equal(1, p["embeddings.LayerNorm.weight"].min().item<float>());
        Assert.Equal(0, p["embeddings.word_embeddings.weight"][0].abs().max().item<float>());
    }

    [Fact]
    public void Saving_a_body_and_loading_it_back_gives_the_same_outputs_and_fingerprint()
    {
        using var original = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert-pt"));
        var saved = Path.Combine(_dir.FullName, "saved");
        ModelFolderWriter.Save(original.Model, original.Folder, saved);
        using var reloaded = BertBody.Load(saved);
        Assert.Equal(original.Fingerprint, reloaded.Fingerprint);
        using var source = CheckpointFiles.OpenFolder(saved);
        Assert.Contains(source.Tensors, t => t.Name == "encoder.layer.1.output.LayerNorm.bias");   // plain BertModel keys
        var batch = original.Encode(["the old man went to the city", "she said no"]);
        using var a = original.Forward(batch);
        using var b = reloaded.Forward(batch);
        Assert.Equal(0.0, ReferenceOutputs.MaxAbsDiff(a.LastHiddenState, b.LastHiddenState));
    }

    [Theory]
    [InlineData(2, "give exactly one of --size and --config", "--vocab", "V", "--out", "O")]
    [InlineData(2, "--size: size 'huge' is not one of", "--vocab", "V", "--out", "O", "--size", "huge")]
    [InlineData(2, "missing required option --out", "--vocab", "V", "--size", "tiny")]
    [InlineData(1, "--vocab:", "--vocab", "/no/such/dir", "--out", "O", "--size", "tiny")]
    public async Task Bad_arguments_are_one_clear_line(int exitCode, string message, params string[] args)
    {
        var full = new[] { "init-model" }.Concat(args.Select(a => a switch { "V" => Vocab, "O" => Path.Combine(_dir.FullName, "o"), _ => a })).ToArray();
        var result = await CliRunner.RunAsync(full);
        Assert.Equal(exitCode, result.ExitCode);
        Assert.Contains(message, result.Error);
        Assert.Single(result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
