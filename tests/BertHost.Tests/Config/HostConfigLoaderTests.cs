using System.Text.Json;
using BertHost.Core.Config;
using BertHost.Core.Plugins;
using BertHost.Tests.Support;

namespace BertHost.Tests.Config;

public sealed class HostConfigLoaderTests : IDisposable
{
    private readonly ConfigFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void A_full_config_round_trips_with_every_value_and_absolute_paths()
    {
        var sha = PluginPaths.Sha256Of(_folder.PluginDll);
        var weights = _folder.MakeWeights("config/heads/sentiment");
        var path = _folder.Write($"""
            host:
              urls: "http://0.0.0.0:8080;https://localhost:8443"
              max_request_bytes: 2097152
              max_inputs_per_request: 32
              oversized: refuse
              shutdown_timeout_seconds: 10
              max_input_tokens: 1000
              max_request_tokens: 4000
              request_timeout_seconds: 5
              max_response_bytes: 4096
              allowed_hosts: [berthost.internal, 10.0.0.7]
              cors: {"{"} origins: [https://app.example] {"}"}
            auth:
              keys:
                - {"{"} id: ci, sha256: {new string('a', 64)}, scopes: [predict, train] {"}"}
            body:
              checkpoint: ../models/bert
              device: cuda:1
              dtype: bfloat16
              max_sequence_length: 128
            batching:
              max_batch_tokens: 8192
              max_batch_requests: 16
              max_wait_ms: 0
              max_queued_inputs: 100
              max_queued_tokens: 50000
            heads:
              - name: sentiment
                kind: text-classification
                plugin: ../plugins/Foo
                sha256: {sha.ToUpperInvariant()}
                labels: [negative, positive]
                weights: heads/sentiment
                options: {"{"} pooling: cls, dropout: 0.1 {"}"}
              - name: ner.v2
                kind: token-classification
                plugin: ../plugins/Foo/Foo.dll
            """);

        var config = HostConfigLoader.Load(path);

        Assert.Equal(path, config.SourcePath);
        Assert.Equal(new HostSection
        {
            Urls = "http://0.0.0.0:8080;https://localhost:8443",
            MaxRequestBytes = 2097152,
            MaxInputsPerRequest = 32,
            Oversized = "refuse",
            ShutdownTimeoutSeconds = 10,
            MaxInputTokens = 1000,
            MaxRequestTokens = 4000,
            RequestTimeoutSeconds = 5,
            MaxResponseBytes = 4096,
            AllowedHosts = config.Host.AllowedHosts,
            CorsOrigins = config.Host.CorsOrigins,
        }, config.Host);
        Assert.Equal(["berthost.internal", "10.0.0.7"], config.Host.AllowedHosts!);
        Assert.Equal(["https://app.example"], config.Host.CorsOrigins);
        var key = Assert.Single(config.Auth!.Keys);
        Assert.Equal(("ci", new string('a', 64)), (key.Id, key.Sha256));
        Assert.Equal(["predict", "train"], key.Scopes);
        Assert.Equal(new BodySection { Checkpoint = _folder.Model, Device = "cuda:1", DType = "bfloat16", MaxSequenceLength = 128 }, config.Body);
        Assert.Equal(new BatchingSection { MaxBatchTokens = 8192, MaxBatchRequests = 16, MaxWaitMs = 0, MaxQueuedInputs = 100, MaxQueuedTokens = 50000 }, config.Batching);

        Assert.Equal(2, config.Heads.Count);
        var sentiment = config.Heads[0];
        Assert.Equal("sentiment", sentiment.Name);
        Assert.Equal("text-classification", sentiment.Kind);
        Assert.Equal(_folder.Plugin, sentiment.Plugin);
        Assert.Equal(sha, sentiment.Sha256); // normalised to lower case
        Assert.Equal(["negative", "positive"], sentiment.Labels);
        Assert.Equal(weights, sentiment.Weights);
        Assert.Equal("""{"pooling":"cls","dropout":0.1}""", sentiment.Options.GetRawText());
        Assert.Equal(28, sentiment.Line);

        var ner = config.Heads[1];
        Assert.Equal("ner.v2", ner.Name);
        Assert.Equal(_folder.PluginDll, ner.Plugin);
        Assert.Null(ner.Sha256);
        Assert.Null(ner.Labels);
        Assert.Null(ner.Weights);
        Assert.Equal(JsonValueKind.Object, ner.Options.ValueKind);
        Assert.Empty(ner.Options.EnumerateObject());
        Assert.Equal(35, ner.Line);
    }

    [Fact]
    public void Only_the_body_checkpoint_is_required_and_the_rest_takes_defaults()
    {
        var config = _folder.Load("body: { checkpoint: ../models/bert }\n");
        Assert.Equal(new HostSection(), config.Host);
        Assert.Equal("http://127.0.0.1:5080", config.Host.Urls);
        Assert.Equal(1 << 20, config.Host.MaxRequestBytes);
        Assert.Equal(256, config.Host.MaxInputsPerRequest);
        Assert.Equal("truncate", config.Host.Oversized);
        Assert.Equal(30, config.Host.ShutdownTimeoutSeconds);
        Assert.Equal(new BodySection { Checkpoint = _folder.Model }, config.Body);
        Assert.Equal("auto", config.Body.Device);
        Assert.Equal("float32", config.Body.DType);
        Assert.Null(config.Body.MaxSequenceLength);
        Assert.Equal(new BatchingSection(), config.Batching);
        Assert.Null(config.Batching.MaxBatchTokens); // the body's device decides (PassBudget)
        Assert.Equal(64, config.Batching.MaxBatchRequests);
        Assert.Equal(5, config.Batching.MaxWaitMs);
        Assert.Equal(4096, config.Batching.MaxQueuedInputs);
        Assert.Empty(config.Heads);
    }

    [Fact]
    public void Empty_sections_and_null_values_mean_defaults()
    {
        var config = _folder.Load("""
            host:
            body:
              checkpoint: ../models/bert
              device: ~
              max_sequence_length: null
            batching: {}
            heads: []
            """);
        Assert.Equal(new HostSection(), config.Host);
        Assert.Equal(new BodySection { Checkpoint = _folder.Model }, config.Body);
        Assert.Equal(new BatchingSection(), config.Batching);
        Assert.Empty(config.Heads);
    }

    [Fact]
    public void Paths_resolve_against_the_yaml_files_folder_and_absolute_paths_stay()
    {
        // The same relative text means different folders for files in different places.
        _folder.MakeModel("config/nested/models/bert");
        Directory.CreateDirectory(_folder.PathOf("config/nested"));
        var nested = _folder.Write("body: { checkpoint: models/bert }\n", "nested/host.yaml");
        Assert.Equal(_folder.PathOf("config/nested/models/bert"), HostConfigLoader.Load(nested).Body.Checkpoint);

        var absolute = _folder.Load($"""
            body: {"{"} checkpoint: "{_folder.Model}" {"}"}
            heads:
              - name: a
                kind: k
                plugin: {_folder.PluginDll}
            """);
        Assert.Equal(_folder.Model, absolute.Body.Checkpoint);
        Assert.Equal(_folder.PluginDll, absolute.Heads[0].Plugin);
    }

    [Fact]
    public void A_relative_source_path_is_made_absolute_and_used_as_the_base()
    {
        var cwd = Environment.CurrentDirectory;
        try
        {
            Environment.CurrentDirectory = _folder.ConfigDir;
            var config = HostConfigLoader.Parse("body: { checkpoint: ../models/bert }", "relative.yaml");
            Assert.Equal(Path.Combine(_folder.ConfigDir, "relative.yaml"), config.SourcePath);
            Assert.Equal(_folder.Model, config.Body.Checkpoint);
        }
        finally
        {
            Environment.CurrentDirectory = cwd;
        }
    }

    [Fact]
    public void Environment_variables_are_substituted_before_typing()
    {
        var unique = "BERTHOST_TEST_" + Guid.NewGuid().ToString("N").ToUpperInvariant();
        Environment.SetEnvironmentVariable(unique + "_MODELS", "../models");
        Environment.SetEnvironmentVariable(unique + "_TOKENS", "2048");
        try
        {
            var config = _folder.Load($$"""
                host: { urls: "http://127.0.0.1:${{{unique}}_PORT:-6000}" }
                body: { checkpoint: "${{{unique}}_MODELS}/bert" }
                batching:
                  max_batch_tokens: "${{{unique}}_TOKENS}"
                  max_wait_ms: ${{{unique}}_WAIT:-7}
                """);
            Assert.Equal("http://127.0.0.1:6000", config.Host.Urls);
            Assert.Equal(_folder.Model, config.Body.Checkpoint);
            Assert.Equal(2048, config.Batching.MaxBatchTokens);
            Assert.Equal(7, config.Batching.MaxWaitMs);
        }
        finally
        {
            Environment.SetEnvironmentVariable(unique + "_MODELS", null);
            Environment.SetEnvironmentVariable(unique + "_TOKENS", null);
        }
    }

    [Fact]
    public void An_undefined_variable_without_default_is_an_error_naming_it()
    {
        var name = "BERTHOST_TEST_UNSET_" + Guid.NewGuid().ToString("N").ToUpperInvariant();
        var problem = _folder.Problem($$"""
            body:
              checkpoint: ../models/bert
              device: ${{{name}}}
            """);
        Assert.Equal(new ConfigProblem(3, 11, "body.device", $"environment variable '{name}' is not set (write ${{{name}:-default}} to give a default)"), problem);
    }

    [Fact]
    public void Substituted_values_are_typed_and_checked_like_written_ones()
    {
        var env = new Dictionary<string, string> { ["TOKENS"] = "lots", ["EMPTY"] = "" };
        var e = _folder.Fail("""
            body: { checkpoint: ../models/bert, dtype: "${EMPTY:-half}" }
            batching: { max_batch_tokens: "${TOKENS}" }
            heads:
              - { name: a, kind: k, plugin: "${BAD NAME}" }
            """, n => env.GetValueOrDefault(n));
        Assert.Equal(
        [
            new ConfigProblem(1, 44, "body.dtype", "must be float32, bfloat16 or float16, got 'half'"),
            new ConfigProblem(2, 31, "batching.max_batch_tokens", "must be an integer, got 'lots'"),
            new ConfigProblem(4, 33, "heads[0].plugin", "invalid environment variable reference '${BAD NAME}' (write ${NAME} or ${NAME:-default})"),
        ], e.Problems);
    }

    [Fact]
    public void A_dollar_dollar_brace_is_a_literal()
    {
        var config = _folder.Load("""
            body: { checkpoint: ../models/bert }
            heads:
              - { name: a, kind: k, plugin: ../plugins/Foo, options: { template: "$${NOT_A_VAR}" } }
            """);
        Assert.Equal("${NOT_A_VAR}", config.Heads[0].Options.GetProperty("template").GetString());
    }

    [Fact]
    public void A_missing_file_is_one_problem_without_a_line()
    {
        var path = Path.Combine(_folder.ConfigDir, "nope.yaml");
        var e = Assert.Throws<ConfigException>(() => HostConfigLoader.Load(path));
        var problem = Assert.Single(e.Problems);
        Assert.Equal(0, problem.Line);
        Assert.Equal($"{path}: file not found ({path})", e.Message);
    }

    [Fact]
    public void The_tiny_bert_fixture_is_a_valid_checkpoint()
    {
        var config = _folder.Load($"body: {{ checkpoint: {TestPaths.Fixture("models", "tiny-bert")}, max_sequence_length: 64 }}\n");
        Assert.Equal(TestPaths.Fixture("models", "tiny-bert"), config.Body.Checkpoint);
        Assert.Equal(64, config.Body.MaxSequenceLength);
    }
}
