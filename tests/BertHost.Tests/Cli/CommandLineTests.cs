using BertHost.Tests.Support;

namespace BertHost.Tests.Cli;

/// <summary>What the verbs get from System.CommandLine: response files, --version, help by verb, completions, and usage errors in one line.</summary>
public sealed class CommandLineTests
{
    private static readonly string TinyBert = ReferenceOutputs.ModelFolder("tiny-bert");

    [Fact]
    public async Task A_response_file_gives_the_same_output_as_the_arguments_it_holds()
    {
        var file = Path.Combine(Path.GetTempPath(), $"berthost-rsp-{Guid.NewGuid():N}.rsp");
        await File.WriteAllTextAsync(file, $"--model {TinyBert}\n--pooling mean\n");
        try
        {
            var direct = await CliRunner.RunAsync("embed", "--model", TinyBert, "--pooling", "mean", "hello there");
            var viaFile = await CliRunner.RunAsync("embed", "@" + file, "hello there");
            Assert.Equal(0, viaFile.ExitCode);
            Assert.Equal(direct.Out, viaFile.Out);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Version_help_by_verb_and_the_verb_list()
    {
        var version = await CliRunner.RunAsync("--version");
        Assert.Equal(0, version.ExitCode);
        Assert.Matches(@"^\d+\.\d+\.\d+", version.Out);

        var byVerb = await CliRunner.RunAsync("help", "embed");
        var byOption = await CliRunner.RunAsync("embed", "--help");
        Assert.Equal(0, byVerb.ExitCode);
        Assert.Equal(byOption.Out, byVerb.Out);
        Assert.Contains("usage: berthost embed --model DIR", byOption.Out);
        Assert.Contains("--pooling <MODE>", byOption.Out);

        var none = await CliRunner.RunAsync();
        Assert.Equal(2, none.ExitCode);
        foreach (var verb in new[] { "serve", "validate", "predict", "embed", "train", "eval", "pretrain", "import-onnx" })
            Assert.Contains(verb, none.Error);
    }

    [Fact]
    public async Task The_suggest_directive_completes_option_names()
    {
        var result = await CliRunner.RunAsync("[suggest:10]", "embed --po");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(["--pooling"], result.OutLines);
    }

    [Theory]
    [InlineData("option --model given more than once", "embed", "--model", "a", "--model", "b", "hi")]
    [InlineData("option --normalize takes no value", "embed", "--model", "M", "--normalize=yes", "hi")]
    [InlineData("unknown option '-x' for 'embed'", "embed", "--model", "M", "-x", "hi")]
    public async Task Usage_errors_are_one_line_and_exit_2(string message, params string[] args)
    {
        var result = await CliRunner.RunAsync(args.Select(a => a == "M" ? TinyBert : a).ToArray());
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(message, result.Error);
        Assert.Single(result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task After_a_double_dash_a_text_that_starts_with_a_dash_is_an_input()
    {
        var result = await CliRunner.RunAsync("embed", "--model", TinyBert, "--pooling", "cls", "--", "-5 degrees");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("\"text\":\"-5 degrees\"", result.Out);
    }
}
