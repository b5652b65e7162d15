using BertHost.Core.Bert;
using BertHost.Tests.Support;
using BertHost.Core.Body;

namespace BertHost.Tests.Pretraining;

public sealed class PretrainCommandTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-pretrain-cli-");
    private static readonly string Vocab = ReferenceOutputs.ModelFolder("tiny-bert");
    private static readonly string Corpus = TestPaths.Fixture("corpus", "small.txt.xz");

    public void Dispose() => _dir.Delete(recursive: true);

    private string[] Args(string outDir, params string[] more) =>
    [
        "pretrain", "--config-size", "tiny", "--vocab", Vocab, "--corpus", Corpus, "--out", outDir,
        "--cache-dir", Path.Combine(_dir.FullName, "cache"), "--max-steps", "3", "--batch-size", "2", "--seq-len", "16",
        "--eval-sequences", "2", "--log-every", "1", "--device", "cpu", .. more,
    ];

    [Fact]
    public async Task Pretrains_writes_a_served_and_fill_mask_ready_folder_and_resumes()
    {
        var outDir = Path.Combine(_dir.FullName, "out");
        var result = await CliRunner.RunAsync(Args(outDir));
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Contains("\"steps\":3,\"completed\":true", result.Out);
        Assert.Contains("\"resumed\":false", result.Out);
        foreach (var file in new[] { "config.json", "vocab.txt", "model.safetensors", "history.json", "history.csv", "history.svg" })
            Assert.True(File.Exists(Path.Combine(outDir, file)), file);
        Assert.StartsWith("step,loss,seconds,", File.ReadAllText(Path.Combine(outDir, "history.csv")));
        Assert.Equal(4, File.ReadAllLines(Path.Combine(outDir, "history.csv")).Length);
        using (var body = BertBody.Load(outDir)) Assert.Equal(2, body.Config.NumHiddenLayers);

        var fill = await CliRunner.RunAsync("fill-mask", "--model", outDir, "--top-k", "3", "the dog is very [MASK] today");
        Assert.True(fill.ExitCode == 0, fill.Error);
        var line = System.Text.Json.JsonDocument.Parse(fill.OutLines.Single()).RootElement;
        Assert.Equal(3, line.GetArrayLength());
        Assert.True(line[0].GetProperty("score").GetDouble() >= line[1].GetProperty("score").GetDouble());
        Assert.StartsWith("the dog is very ", line[0].GetProperty("sequence").GetString());

        // Running the same command again finds the finished checkpoint.
        var again = await CliRunner.RunAsync(Args(outDir));
        Assert.True(again.ExitCode == 0, again.Error);
        Assert.Contains("\"steps\":3,\"completed\":true", again.Out);
        Assert.Contains("\"resumed\":true", again.Out);
        Assert.Contains("resuming from the checkpoint in", again.Error);
    }

    [Fact]
    public async Task Usage_errors_name_the_option()
    {
        var outDir = Path.Combine(_dir.FullName, "o");
        var r = await CliRunner.RunAsync(Args(outDir, "--precision", "bf16"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("precision bf16: mixed-precision training needs autocast, which TorchSharp 0.107 does not have", r.Error);

        r = await CliRunner.RunAsync("pretrain", "--corpus", Corpus, "--out", outDir);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("give exactly one of --config-size, --config and --from", r.Error);

        r = await CliRunner.RunAsync("pretrain", "--corpus", Path.Combine(_dir.FullName, "missing.txt"), "--out", outDir, "--config-size", "tiny", "--vocab", Vocab);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--corpus: file", r.Error);
    }

    [Fact]
    public async Task Fill_mask_explains_a_folder_without_head_and_a_text_without_mask()
    {
        var r = await CliRunner.RunAsync("fill-mask", "--model", Vocab, "the [MASK] sat");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("has no masked-LM head (cls.predictions.*)", r.Error);

        r = await CliRunner.RunAsync("fill-mask", "--model", ReferenceOutputs.ModelFolder("tiny-bert-pt"), "no mask here", "the [MASK] sat");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("input 1: the text has no [MASK] token", r.Error);
        Assert.Single(r.OutLines);   // the second input is still answered
    }
}
