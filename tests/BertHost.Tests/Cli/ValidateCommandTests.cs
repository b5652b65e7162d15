using BertHost.Cli;
using BertHost.Tests.Config;
using BertHost.Tests.Support;

namespace BertHost.Tests.Cli;

public sealed class ValidateCommandTests : IDisposable
{
    private readonly ConfigFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task A_valid_file_prints_ok_with_its_heads()
    {
        var path = _folder.Write("""
            body: { checkpoint: ../models/bert }
            heads:
              - { name: sentiment, kind: text-classification, plugin: ../plugins/Foo, labels: [neg, pos] }
              - { name: ner, kind: token-classification, plugin: ../plugins/Foo }
            """);
        var result = await CliRunner.RunAsync("validate", "--config", path);
        Assert.Equal(CliApp.ExitOk, result.ExitCode);
        Assert.Equal($"{path}: OK (1 body, 2 heads: sentiment (text-classification), ner (token-classification))", Assert.Single(result.OutLines).TrimEnd());
        Assert.Equal("", result.Error);
    }

    [Fact]
    public async Task One_head_and_no_heads_read_naturally()
    {
        var none = _folder.Write("body: { checkpoint: ../models/bert }\n", "none.yaml");
        Assert.Equal($"{none}: OK (1 body, 0 heads)", (await CliRunner.RunAsync("validate", "--config", none)).Out.TrimEnd());
        var one = _folder.Write("body: { checkpoint: ../models/bert }\nheads: [{ name: a, kind: k, plugin: ../plugins/Foo }]\n", "one.yaml");
        Assert.Equal($"{one}: OK (1 body, 1 head: a (k))", (await CliRunner.RunAsync("validate", "--config=" + one)).Out.TrimEnd());
    }

    [Fact]
    public async Task Problems_go_to_stderr_one_per_line_with_exit_code_1()
    {
        var path = _folder.Write("""
            body:
              checkpoint: ../models/bert
              dtype: float64
            batching:
              max_batch_token: 10
            """);
        var result = await CliRunner.RunAsync("validate", "--config", path);
        Assert.Equal(CliApp.ExitFailure, result.ExitCode);
        Assert.Equal("", result.Out);
        Assert.Equal(
        [
            $"{path}:3: body.dtype: must be float32, bfloat16 or float16, got 'float64'",
            $"{path}:5: batching.max_batch_token: unknown key 'max_batch_token' (did you mean 'max_batch_tokens'?)",
        ], result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')));
    }

    [Fact]
    public async Task A_missing_file_fails_with_exit_code_1()
    {
        var path = Path.Combine(_folder.ConfigDir, "absent.yaml");
        var result = await CliRunner.RunAsync("validate", "--config", path);
        Assert.Equal(CliApp.ExitFailure, result.ExitCode);
        Assert.Equal($"{path}: file not found ({path})", result.Error.TrimEnd());
    }

    [Fact]
    public async Task A_missing_config_option_is_a_usage_error()
    {
        var result = await CliRunner.RunAsync("validate");
        Assert.Equal(CliApp.ExitUsage, result.ExitCode);
        Assert.Contains("missing required option --config", result.Error);

        var positional = await CliRunner.RunAsync("validate", "host.yaml");
        Assert.Equal(CliApp.ExitUsage, positional.ExitCode);
        Assert.Contains("unexpected argument 'host.yaml'", positional.Error);
    }

    [Fact]
    public async Task Validate_is_listed_in_the_help()
    {
        var result = await CliRunner.RunAsync("--help");
        Assert.Contains("validate", result.Out);
        var help = await CliRunner.RunAsync("validate", "--help");
        Assert.Contains("--config FILE", help.Out);
    }
}
