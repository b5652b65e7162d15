using BertHost.Cli;
using BertHost.Tests.Config;
using BertHost.Tests.Heads.TokenClassification;
using BertHost.Tests.Plugins;
using BertHost.Tests.Support;

namespace BertHost.Tests.Cli;

public sealed class ValidateCommandTests : IDisposable
{
    private readonly ConfigFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    // validate loads each head's plugin and lets its kind check the head: the heads name real plugins.
    private static readonly string Classification = HeadTestSupport.ClassificationPlugin;
    private static readonly string TokenClassification = TokenClassificationSupport.TokenClassificationPlugin;

    [Fact]
    public async Task A_valid_file_prints_ok_with_its_heads()
    {
        var path = _folder.Write($$"""
            body: { checkpoint: ../models/bert }
            heads:
              - { name: sentiment, kind: text-classification, plugin: {{Classification}}, labels: [neg, pos] }
              - { name: ner, kind: token-classification, plugin: {{TokenClassification}}, labels: [O, B-PER, I-PER] }
            """);
        var result = await CliRunner.RunAsync("validate", "--config", path);
        Assert.Equal("", result.Error);
        Assert.Equal(CliApp.ExitOk, result.ExitCode);
        Assert.Equal($"{path}: OK (1 body, 2 heads: sentiment (text-classification), ner (token-classification))", Assert.Single(result.OutLines).TrimEnd());
    }

    [Fact]
    public async Task One_head_and_no_heads_read_naturally()
    {
        var none = _folder.Write("body: { checkpoint: ../models/bert }\n", "none.yaml");
        Assert.Equal($"{none}: OK (1 body, 0 heads)", (await CliRunner.RunAsync("validate", "--config", none)).Out.TrimEnd());
        var one = _folder.Write($"body: {{ checkpoint: ../models/bert }}\nheads: [{{ name: a, kind: embedding, plugin: {HeadTestSupport.EmbeddingPlugin} }}]\n", "one.yaml");
        Assert.Equal($"{one}: OK (1 body, 1 head: a (embedding))", (await CliRunner.RunAsync("validate", "--config=" + one)).Out.TrimEnd());
    }

    [Fact]
    public async Task Every_head_problem_is_listed_with_its_line_and_a_suggestion()
    {
        // The body's config.json (ConfigFolder's model) has hidden_size 32 and the default 12 layers.
        var path = _folder.Write($$"""
            body: { checkpoint: ../models/bert }
            heads:
              - name: sentiment
                kind: text-classification
                plugin: {{Classification}}
                labels: [neg, pos]
                options:
                  dropout: "high"
                  pooling: 3
                  poolng: cls
                  class_weights: [1, 2, 3]
              - name: ner
                kind: token-classifcation
                plugin: {{TokenClassification}}
              - name: tags
                kind: token-classification
                plugin: {{TokenClassification}}
                options:
                  hidden_size: 2.5
              - name: emb
                kind: embedding
                plugin: {{HeadTestSupport.EmbeddingPlugin}}
                labels: [a]
                options: { dimensions: 33 }
            """);
        var result = await CliRunner.RunAsync("validate", "--config", path);
        Assert.Equal(CliApp.ExitFailure, result.ExitCode);
        Assert.Equal("", result.Out);
        var lines = result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal(
        [
            $"{path}:8: heads[0].options.dropout: options.dropout must be a number, got the string \"high\"",
            $"{path}:9: heads[0].options.pooling: options.pooling must be a string, got the number 3",
            $"{path}:10: heads[0].options.poolng: unknown option 'poolng' for a text-classification head (did you mean 'pooling'?; known: pooling, dropout, hidden_layers, activation, problem_type, max_length, layer, class_weights)",
            $"{path}:11: heads[0].options.class_weights: class_weights has 3 values but the head has 2 labels",
        ], lines.Take(4));
        Assert.StartsWith($"{path}:13: heads[1].kind: no head kind 'token-classifcation' in BertHost.Heads.TokenClassification.dll", lines[4]);
        Assert.EndsWith("; did you mean 'token-classification'?", lines[4]);
        Assert.Equal(
        [
            // A problem without a key of its own (no labels given) is reported at the head's entry.
            $"{path}:15: heads[2].labels: a fresh token-classification head needs labels: list them in the head's 'labels' (e.g. [O, B-PER, I-PER, B-LOC, I-LOC])",
            $"{path}:19: heads[2].options.hidden_size: options.hidden_size must be an integer, got the number 2.5",
            $"{path}:23: heads[3].labels: an embedding head has no labels; remove 'labels'",
            $"{path}:24: heads[3].options.dimensions: dimensions must be at most the body's hidden size 32, got 33",
        ], lines.Skip(5));
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
