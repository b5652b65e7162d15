using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using BertHost.Cli;
using BertHost.Tests.Integration;
using BertHost.Tests.Support;

namespace BertHost.Tests.Cli;

/// <summary>The verbs that load a deployment: serve (the daemon), predict, heads, validate.</summary>
public sealed class ServingCommandTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-cli-");

    public void Dispose() => _dir.Delete(recursive: true);

    private string WriteConfig(string yaml)
    {
        var path = Path.Combine(_dir.FullName, "deployment.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    [Fact]
    public async Task Serve_answers_http_until_stopped_then_drains_and_exits_0()
    {
        var config = WriteConfig(HostFixture.Yaml());
        var outputText = new StringWriter();
        var errorText = new StringWriter();
        var output = TextWriter.Synchronized(outputText);
        var error = TextWriter.Synchronized(errorText);
        using var stop = new CancellationTokenSource();
        var run = CliApp.CreateDefault().RunAsync(["serve", "--config", config, "--urls", "http://127.0.0.1:0"],
            new CommandContext(new StringReader(""), output, error), stop.Token);

        string? url = null;
        for (var i = 0; i < 300 && url is null && !run.IsCompleted; i++)
        {
            await Task.Delay(100);
            url = Regex.Match(Read(outputText, output), @"serving 5 of 6 heads on (http://127\.0\.0\.1:\d+)") is { Success: true } m ? m.Groups[1].Value : null;
        }
        Assert.True(url is not null, $"serve did not start: {Read(outputText, output)}{Read(errorText, error)}");

        using var client = new HttpClient { BaseAddress = new Uri(url!) };
        using var response = await client.PostAsJsonAsync("/v1/heads/sentiment/predict", new { inputs = new[] { "the dog" } });
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.NotNull(body["outputs"]![0]!["label"]);

        stop.Cancel();
        Assert.Equal(0, await run);
    }

    // The synchronised wrapper locks on itself; reading under the same lock sees whole writes.
    private static string Read(StringWriter inner, TextWriter synchronised)
    {
        lock (synchronised) return inner.ToString();
    }

    [Fact]
    public async Task Serve_refuses_to_start_on_a_config_with_problems_and_lists_them()
    {
        var config = WriteConfig($"""
            body:
              checkpoint: /no/such/model
            batching:
              max_batch_token: 10
            """);
        var result = await CliRunner.RunAsync("serve", "--config", config);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("model folder not found: /no/such/model", result.Error);
        Assert.Contains("did you mean 'max_batch_tokens'?", result.Error);
        Assert.Contains(":2:", result.Error);
        Assert.Contains(":4:", result.Error);
    }

    [Fact]
    public async Task Predict_prints_the_api_json_per_input_and_reports_bad_inputs_by_number()
    {
        var config = WriteConfig(HostFixture.Yaml());
        var result = await CliRunner.RunWithStdinAsync("{\"text\": \"she said no\"}\n{\"text\": 5}\n", "predict", "--config", config, "--head", "topic",
            "--parameters", "{\"top_k\": 2}", "the dog", "--input", "-");
        Assert.Equal(1, result.ExitCode);
        Assert.Equal(2, result.OutLines.Length);
        foreach (var line in result.OutLines)
        {
            var json = JsonNode.Parse(line)!;
            Assert.Contains(json["label"]!.GetValue<string>(), new[] { "sports", "politics", "science" });
            Assert.Equal(2, json["top"]!.AsArray().Count);
        }
        Assert.Contains("input 3.text:", result.Error);
    }

    [Fact]
    public async Task Predict_on_a_failed_or_unknown_head_is_one_clear_line()
    {
        var config = WriteConfig(HostFixture.Yaml());
        var broken = await CliRunner.RunAsync("predict", "--config", config, "--head", "broken", "x");
        Assert.Equal(1, broken.ExitCode);
        Assert.Contains("head 'broken' is failed:", broken.Error);
        var unknown = await CliRunner.RunAsync("predict", "--config", config, "--head", "nope", "x");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("no head named 'nope'", unknown.Error);
    }

    [Fact]
    public async Task Predict_verbose_shows_the_stack_trace_of_a_plugin_bug()
    {
        var config = WriteConfig(HostFixture.Yaml());
        var quiet = await CliRunner.RunAsync("predict", "--config", config, "--head", "flaky", "throw in encode");
        Assert.Equal(1, quiet.ExitCode);
        Assert.Contains("input 1: head 'flaky' failed while encoding input 0: throws-in-forward failed in Encode on purpose", quiet.Error);
        Assert.DoesNotContain("   at ", quiet.Error);

        var verbose = await CliRunner.RunAsync("predict", "--config", config, "--head", "flaky", "--verbose", "throw in encode");
        Assert.Equal(1, verbose.ExitCode);
        Assert.Contains("System.InvalidOperationException: throws-in-forward failed in Encode on purpose", verbose.Error);
        Assert.Contains("at BertHost.TestHeads.ThrowsInForwardHead.", verbose.Error);
    }

    [Fact]
    public async Task Heads_lists_every_head_and_exits_1_when_one_failed()
    {
        var config = WriteConfig(HostFixture.Yaml());
        var result = await CliRunner.RunAsync("heads", "--config", config);
        Assert.Equal(1, result.ExitCode);
        var heads = result.OutLines.Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(6, heads.Count);
        Assert.Equal("failed", heads.Single(h => h["name"]!.GetValue<string>() == "broken")["state"]!.GetValue<string>());
        Assert.Equal(64, heads.First()["plugin_sha256"]!.GetValue<string>().Length);
    }

    // config/default.yaml serves the imported all-MiniLM-L6-v2 body: DefaultDeploymentTests checks it, and the test below.
    [Theory]
    [InlineData("all-heads.yaml", "OK (1 body, 4 heads: sentiment (text-classification), ner (token-classification), qa (question-answering), choice (multiple-choice))")]
    public async Task The_shipped_deployments_validate_and_their_heads_load(string file, string expected)
    {
        var config = Path.Combine(TestPaths.RepoRoot, "config", file);
        var result = await CliRunner.RunAsync("validate", "--config", config);
        Assert.Equal(0, result.ExitCode);
        Assert.Contains(expected, result.Out);
        var heads = await CliRunner.RunAsync("heads", "--config", config);
        Assert.Equal(0, heads.ExitCode);
        Assert.All(heads.OutLines, l => Assert.Equal("ready", JsonNode.Parse(l)!["state"]!.GetValue<string>()));
    }

    [DefaultDeploymentFact]
    public Task The_default_deployment_validates_and_its_heads_load() => The_shipped_deployments_validate_and_their_heads_load("default.yaml",
        "OK (1 body, 5 heads: sentiment (text-classification), sentiment-lora (text-classification), ner (token-classification), ner-lora (token-classification), embeddings (embedding))");

    [Fact]
    public async Task With_oversized_refuse_a_long_input_is_an_error_naming_its_length_and_short_ones_pass()
    {
        var config = WriteConfig(HostFixture.Yaml().Replace("  max_inputs_per_request: 32", "  max_inputs_per_request: 32\n  oversized: refuse"));
        var longText = string.Join(' ', Enumerable.Repeat("the old man went to the city", 20));
        var result = await CliRunner.RunAsync("predict", "--config", config, "--head", "sentiment", "the dog", longText);
        Assert.Equal(1, result.ExitCode);
        Assert.Single(result.OutLines);
        Assert.Contains("input 2.text: the input is 142 tokens; this head accepts at most 64", result.Error);
    }

    [Fact]
    public async Task A_missing_plugin_fails_that_head_only_while_a_bad_sha256_stops_heads_and_serve_and_validate_reports_both()
    {
        const string missing = "NoSuchPlugin";
        var missingHead = $"""
              - name: missing
                kind: text-classification
                plugin: {Path.Combine(_dir.FullName, missing)}
            """;
        var pinnedHead = $"""
              - name: pinned
                kind: text-classification
                plugin: {Plugins.HeadTestSupport.ClassificationPlugin}
                sha256: {new string('0', 64)}
                labels: [a, b]
            """;
        var both = WriteConfig(HostFixture.Yaml(missingHead + "\n" + pinnedHead));
        var validate = await CliRunner.RunAsync("validate", "--config", both);
        Assert.Equal(1, validate.ExitCode);
        Assert.Contains("heads[6].plugin: no plugin assembly found", validate.Error);
        Assert.Contains("heads[7].sha256: sha256 mismatch", validate.Error);

        // The pin is what the operator vetted: a mismatch refuses to serve at all (README: "a mismatch refuses to start").
        foreach (var args in new[] { new[] { "heads", "--config", both }, ["serve", "--config", both, "--urls", "http://127.0.0.1:0"] })
        {
            var verb = args[0];
            var refused = await CliRunner.RunAsync(args);
            Assert.True(refused.ExitCode == 1, $"{verb}: {refused.ExitCode} {refused.Out} {refused.Error}");
            Assert.Contains("heads[7].sha256: sha256 mismatch", refused.Error);
            Assert.Empty(refused.Out);
        }

        var config = WriteConfig(HostFixture.Yaml(missingHead));
        var heads = await CliRunner.RunAsync("heads", "--config", config);
        Assert.True(heads.OutLines.Length == 7, heads.Out + heads.Error);
        var states = heads.OutLines.Select(l => JsonNode.Parse(l)!).ToDictionary(h => h["name"]!.GetValue<string>());
        Assert.Equal("failed", states["missing"]["state"]!.GetValue<string>());
        Assert.Contains("no assembly found", states["missing"]["error"]!.GetValue<string>());
        Assert.Equal("ready", states["sentiment"]["state"]!.GetValue<string>());
        Assert.Contains("this head will not load", heads.Error);

        var predict = await CliRunner.RunAsync("predict", "--config", config, "--head", "sentiment", "the dog");
        Assert.Equal(0, predict.ExitCode);
    }
}
