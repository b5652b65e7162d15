using System.Text.Json;
using BertHost.Tests.Support;
using static TorchSharp.torch;

namespace BertHost.Tests.Cli;

public class EmbedCommandTests
{
    private static readonly string TinyBert = ReferenceOutputs.ModelFolder("tiny-bert");
    private readonly ReferenceOutputs _reference = ReferenceOutputs.Load();

    private static JsonElement ParseLine(string line) => JsonDocument.Parse(line).RootElement.Clone();

    [Fact]
    public async Task Token_embeddings_match_the_reference_for_a_text()
    {
        var c = _reference.Case("single");
        var result = await CliRunner.RunAsync("embed", "--model", TinyBert, c.GetProperty("text").GetString()!);
        Assert.Equal(0, result.ExitCode);
        var line = Assert.Single(result.OutLines);
        var json = ParseLine(line);
        Assert.Equal(c.GetProperty("text").GetString(), json.GetProperty("text").GetString());
        Assert.False(json.TryGetProperty("text_pair", out _));
        Assert.Equal(c.GetProperty("input_ids")[0].ToString(), json.GetProperty("input_ids").ToString());
        Assert.Equal(c.GetProperty("token_type_ids")[0].ToString(), json.GetProperty("token_type_ids").ToString());
        using var embedding = ReferenceOutputs.ToTensor(json.GetProperty("embedding"));
        using var expected = ReferenceOutputs.ToTensor(c.GetProperty("last_hidden_state"))[0];
        Assert.Equal(expected.shape, embedding.shape);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(embedding, expected), 0, 1e-4);
    }

    [Fact]
    public async Task The_executable_prints_every_line_and_its_exit_code_before_it_skips_teardown()
    {
        // embed ends with _exit (QuickExit): what it printed must all be out, in order, more than a pipe buffer of it.
        var input = Path.Combine(Path.GetTempPath(), $"berthost-embed-{Guid.NewGuid():N}.jsonl");
        var texts = Enumerable.Range(0, 600).Select(i => $"sentence number {i} of the quick exit test").ToList();
        await File.WriteAllLinesAsync(input, texts.Select(t => JsonSerializer.Serialize(new { text = t })));
        try
        {
            var berthost = Path.Combine(AppContext.BaseDirectory, "berthost.dll");
            var (code, log) = await DotnetCli.RunAsync(DotnetCli.Executable, [berthost, "embed", "--model", TinyBert, "--pooling", "mean", "--input", input]);
            Assert.Equal(0, code);
            var lines = log.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(texts, lines.Select(l => ParseLine(l).GetProperty("text").GetString()!));
            (code, log) = await DotnetCli.RunAsync(DotnetCli.Executable, [berthost, "embed", "--model", TinyBert + "-missing", "x"]);
            Assert.Equal(1, code);
            Assert.StartsWith("berthost embed: error: model folder", log.Trim());
        }
        finally
        {
            File.Delete(input);
        }
    }

    [Fact]
    public async Task An_embedding_JSON_cannot_carry_is_one_error_line_naming_the_input()
    {
        // A body whose LayerNorm scales overflow float32 embeds every text to infinities.
        var folder = Path.Combine(Path.GetTempPath(), "berthost-tests", $"overflowing-{Guid.NewGuid():N}");
        var config = BertHost.Core.Bert.BertConfig.Load(Path.Combine(TinyBert, "config.json"));
        using (var model = new BertHost.Core.Bert.BertModel(config, addPoolingLayer: true))
        {
            BertHost.Core.Bert.BertInitializer.Initialize(model, seed: 3);
            using (no_grad()) model.encoder.layer[^1].output.LayerNorm.weight!.fill_(float.MaxValue);
            BertHost.Core.Checkpoints.ModelFolderWriter.Save(model, TinyBert, folder);
        }
        try
        {
            var result = await CliRunner.RunAsync("embed", "--model", folder, "--pooling", "mean", "a first text", "a second one");
            Assert.Equal(1, result.ExitCode);
            Assert.Equal("berthost embed: error: input 1's embedding holds NaN or infinity, which JSON cannot carry (the model's weights or activations overflow float32)",
                result.Error.Trim());
            Assert.Empty(result.OutLines);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData(48, 4, 192)]
    [InlineData(312, 12, 1200)]
    public async Task Embeddings_on_the_fast_paths_equal_the_plain_path(int hidden, int heads, int intermediate)
    {
        var folder = BertHost.Tests.Bert.RandomBodies.Write(hidden, heads, intermediate);
        var texts = BertHost.Tests.Bert.RandomBodies.Texts;
        var fast = await CliRunner.RunAsync(["embed", "--model", folder, "--device", "cpu", .. texts]);
        var plain = await CliRunner.RunAsync(["embed", "--model", folder, "--device", "cpu", "--no-fast-paths", .. texts]);
        Assert.Equal(0, fast.ExitCode);
        Assert.Equal(0, plain.ExitCode);
        Assert.Equal(texts.Length, fast.OutLines.Length);
        for (var i = 0; i < texts.Length; i++)
        {
            using var a = ReferenceOutputs.ToTensor(ParseLine(fast.OutLines[i]).GetProperty("embedding"));
            using var b = ReferenceOutputs.ToTensor(ParseLine(plain.OutLines[i]).GetProperty("embedding"));
            Assert.InRange(ReferenceOutputs.MaxAbsDiff(a, b), 0, 1e-4);
        }
    }

    [Fact]
    public async Task A_pair_gets_segment_ids_and_its_pooler_output()
    {
        var c = _reference.Case("pair");
        var result = await CliRunner.RunAsync("embed", "--model", TinyBert, "--pooling", "pooler",
            "--pair", c.GetProperty("text_pair").GetString()!, c.GetProperty("text").GetString()!);
        Assert.Equal(0, result.ExitCode);
        var json = ParseLine(Assert.Single(result.OutLines));
        Assert.Equal(c.GetProperty("text_pair").GetString(), json.GetProperty("text_pair").GetString());
        Assert.Equal(c.GetProperty("token_type_ids")[0].ToString(), json.GetProperty("token_type_ids").ToString());
        using var embedding = ReferenceOutputs.ToTensor(json.GetProperty("embedding"));
        using var expected = ReferenceOutputs.ToTensor(c.GetProperty("pooler_output"))[0];
        Assert.Equal(new long[] { 32 }, embedding.shape);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(embedding, expected), 0, 1e-4);
    }

    [Fact]
    public async Task Jsonl_input_is_embedded_in_input_order_with_mean_pooling()
    {
        var c = _reference.Case("padded_batch");
        var texts = c.GetProperty("texts").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var file = Path.GetTempFileName();
        try
        {
            // Objects and bare strings are both accepted; blank lines are skipped.
            await File.WriteAllTextAsync(file, $"{JsonSerializer.Serialize(new { text = texts[0] })}\n\n{JsonSerializer.Serialize(texts[1])}\n{JsonSerializer.Serialize(new { text = texts[2] })}\n");
            var result = await CliRunner.RunAsync("embed", "--model", TinyBert, "--pooling", "mean", "--batch-size", "2", "--input", file);
            Assert.Equal(0, result.ExitCode);
            Assert.Equal(3, result.OutLines.Length);
            using var expected = ReferenceOutputs.ToTensor(c.GetProperty("mean_pooled"));
            for (var i = 0; i < 3; i++)
            {
                var json = ParseLine(result.OutLines[i]);
                Assert.Equal(texts[i], json.GetProperty("text").GetString());
                using var embedding = ReferenceOutputs.ToTensor(json.GetProperty("embedding"));
                Assert.InRange(ReferenceOutputs.MaxAbsDiff(embedding, expected[i]), 0, 1e-4);
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Stdin_input_and_normalised_cls_vectors()
    {
        var result = await CliRunner.RunWithStdinAsync("\"the dog\"\n", "embed", "--model", TinyBert, "--pooling", "cls", "--normalize", "--input", "-");
        Assert.Equal(0, result.ExitCode);
        var json = ParseLine(Assert.Single(result.OutLines));
        var vector = json.GetProperty("embedding").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.Equal(32, vector.Length);
        Assert.Equal(1.0, Math.Sqrt(vector.Sum(x => x * x)), 5);
    }

    [Fact]
    public async Task Long_inputs_are_truncated_to_max_length_with_a_warning()
    {
        var text = string.Join(' ', Enumerable.Repeat("the dog", 20));
        var result = await CliRunner.RunAsync("embed", "--model", TinyBert, "--max-length", "8", text);
        Assert.Equal(0, result.ExitCode);
        var json = ParseLine(Assert.Single(result.OutLines));
        Assert.Equal(8, json.GetProperty("input_ids").GetArrayLength());
        Assert.Equal(8, json.GetProperty("embedding").GetArrayLength());
        Assert.Contains("input 1 was truncated to 8 tokens", result.Error);
    }

    [Theory]
    [InlineData(2, "missing required option --model", "embed", "hello")]
    [InlineData(2, "unknown option '--modle'", "embed", "--modle", "x", "hello")]
    [InlineData(2, "--pooling: pooling 'avg' is not one of none, cls, mean, max, pooler", "embed", "--model", "M", "--pooling", "avg", "hi")]
    [InlineData(2, "no input: give TEXT arguments or --input FILE", "embed", "--model", "M")]
    [InlineData(2, "--max-length must be an integer >= 2, got 'ten'", "embed", "--model", "M", "--max-length", "ten", "hi")]
    [InlineData(2, "--max-batch-tokens must be an integer >= 1, got '0'", "embed", "--model", "M", "--max-batch-tokens", "0", "hi")]
    [InlineData(2, "option --pooling needs a value", "embed", "--model", "M", "--pooling")]
    [InlineData(2, "--truncation must be longest_first, only_first or only_second", "embed", "--model", "M", "--truncation", "x", "hi")]
    [InlineData(2, "unknown command 'embedd'", "embedd")]
    [InlineData(1, "model folder '/no/such/model' does not exist", "embed", "--model", "/no/such/model", "hi")]
    [InlineData(1, "--input: file '/no/such.jsonl' not found", "embed", "--model", "M", "--input", "/no/such.jsonl")]
    public async Task Bad_arguments_give_one_clear_line_and_a_non_zero_exit(int exitCode, string message, params string[] args)
    {
        var result = await CliRunner.RunAsync(args.Select(a => a == "M" ? TinyBert : a).ToArray());
        Assert.Equal(exitCode, result.ExitCode);
        Assert.Contains(message, result.Error);
        Assert.Single(result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("", result.Out);
    }

    [Theory]
    [InlineData("{\"text\": 3}", "<stdin>:1: field \"text\" must be a string, got number")]
    [InlineData("{\"txt\": \"a\"}", "<stdin>:1: field \"text\" is missing")]
    [InlineData("[1, 2]", "<stdin>:1: expected a JSON object with \"text\" or a JSON string, got array")]
    [InlineData("{oops", "<stdin>:1: not valid JSON")]
    public async Task Malformed_input_lines_are_reported_with_their_line(string line, string message)
    {
        var result = await CliRunner.RunWithStdinAsync(line + "\n", "embed", "--model", TinyBert, "--input", "-");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(message, result.Error);
    }

    [Fact]
    public async Task Pooler_pooling_on_a_body_without_pooler_is_a_clear_error()
    {
        var result = await CliRunner.RunAsync("embed", "--model", ReferenceOutputs.ModelFolder("tiny-bert-no-pooler"), "--pooling", "pooler", "hi");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("pooler weights", result.Error);
    }

    [Fact]
    public async Task Help_describes_every_option()
    {
        var result = await CliRunner.RunAsync("embed", "--help");
        Assert.Equal(0, result.ExitCode);
        foreach (var option in new[] { "--model", "--pooling", "--pair", "--input", "--device", "--dtype", "--max-length" })
            Assert.Contains(option, result.Out);
        var general = await CliRunner.RunAsync("--help");
        Assert.Contains("embed", general.Out);
    }

    [Theory]
    [InlineData("broken/bad-config", "config.json")]
    [InlineData("broken/missing-key", "encoder.layer.1.output.dense.weight")]
    [InlineData("broken/no-weights", "pytorch_model.bin")]
    public async Task A_malformed_model_folder_is_one_clear_line_and_exit_1(string folder, string expected)
    {
        var result = await CliRunner.RunAsync("embed", "--model", TestPaths.Fixture("models", folder), "hi");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expected, result.Error);
        Assert.Single(result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task A_config_the_encoder_cannot_honour_is_refused_naming_the_field()
    {
        var dir = Directory.CreateTempSubdirectory("berthost-embed-config-");
        try
        {
            foreach (var f in Directory.GetFiles(TinyBert)) File.Copy(f, Path.Combine(dir.FullName, Path.GetFileName(f)));
            var configPath = Path.Combine(dir.FullName, "config.json");
            File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"absolute\"", "\"relative_key\""));
            var result = await CliRunner.RunAsync("embed", "--model", dir.FullName, "hi");
            Assert.Equal(1, result.ExitCode);
            Assert.Contains("position_embedding_type 'relative_key' is not supported", result.Error);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
