using BertHost.Core.Config;

namespace BertHost.Tests.Config;

/// <summary>Keys, types, ranges, enums, the model folder, YAML syntax: each problem with its line and path.</summary>
public sealed class ConfigProblemTests : IDisposable
{
    private readonly ConfigFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private const string Body = "body: { checkpoint: ../models/bert }\n";

    [Fact]
    public void Unknown_keys_are_errors_with_a_suggestion()
    {
        var e = _folder.Fail(Body + """
            batching:
              max_batch_token: 100
            Heads: []
            host: { urls: "http://127.0.0.1:1", max-request-bytes: 10, colour: blue }
            """);
        Assert.Equal(
        [
            new ConfigProblem(3, 3, "batching.max_batch_token", "unknown key 'max_batch_token' (did you mean 'max_batch_tokens'?)"),
            new ConfigProblem(4, 1, "Heads", "unknown key 'Heads' (did you mean 'heads'?)"),
            new ConfigProblem(5, 37, "host.max-request-bytes", "unknown key 'max-request-bytes' (did you mean 'max_request_bytes'?)"),
            new ConfigProblem(5, 60, "host.colour", "unknown key 'colour' (known keys: urls, max_request_bytes, max_inputs_per_request, oversized, shutdown_timeout_seconds, max_input_tokens, max_request_tokens, request_timeout_seconds, max_response_bytes, allowed_hosts, cors, https)"),
        ], e.Problems);
    }

    [Fact]
    public void Unknown_keys_in_a_head_are_errors_but_options_are_free_form()
    {
        var problem = _folder.Problem(Body + """
            heads:
              - name: a
                kind: k
                plugin: ../plugins/Foo
                lables: [x]
                options: { anything: goes, nested: { at: all } }
            """);
        Assert.Equal(new ConfigProblem(6, 5, "heads[0].lables", "unknown key 'lables' (did you mean 'labels'?)"), problem);
    }

    [Fact]
    public void Wrong_types_name_what_was_expected_and_what_was_given()
    {
        var e = _folder.Fail("""
            host:
              urls: [a, b]
              max_request_bytes: abc
              max_inputs_per_request: 2.5
            body:
              checkpoint: { path: x }
            batching: 42
            heads: { name: a }
            """);
        Assert.Equal(
        [
            new ConfigProblem(2, 9, "host.urls", "must be a string, got a list"),
            new ConfigProblem(3, 22, "host.max_request_bytes", "must be an integer, got 'abc'"),
            new ConfigProblem(4, 27, "host.max_inputs_per_request", "must be an integer, got '2.5'"),
            new ConfigProblem(6, 15, "body.checkpoint", "must be a string, got a mapping"),
            new ConfigProblem(7, 11, "batching", "'batching' must be a mapping (max_batch_tokens, max_batch_requests, max_wait_ms, max_queued_inputs, max_queued_tokens), got '42'"),
            new ConfigProblem(8, 8, "heads", "must be a list of heads (- name: ..., kind: ..., plugin: ...), got a mapping"),
        ], e.Problems);
    }

    [Fact]
    public void Numbers_out_of_range_are_errors()
    {
        var e = _folder.Fail(Body + """
            host: { max_request_bytes: 0, shutdown_timeout_seconds: -1, max_inputs_per_request: 3000000000 }
            batching:
              max_batch_tokens: 0
              max_batch_requests: -5
              max_wait_ms: -1
              max_queued_inputs: 0
            """);
        Assert.Equal(
        [
            new ConfigProblem(2, 28, "host.max_request_bytes", "must be positive, got 0"),
            new ConfigProblem(2, 57, "host.shutdown_timeout_seconds", "must be at least 0, got -1"),
            new ConfigProblem(2, 85, "host.max_inputs_per_request", "must be at most 2147483647, got 3000000000"),
            new ConfigProblem(4, 21, "batching.max_batch_tokens", "must be positive, got 0"),
            new ConfigProblem(5, 23, "batching.max_batch_requests", "must be positive, got -5"),
            new ConfigProblem(6, 16, "batching.max_wait_ms", "must be at least 0, got -1"),
            new ConfigProblem(7, 22, "batching.max_queued_inputs", "must be positive, got 0"),
        ], e.Problems);
    }

    [Fact]
    public void Zero_wait_and_zero_shutdown_timeout_are_allowed()
    {
        var config = _folder.Load(Body + "batching: { max_wait_ms: 0 }\nhost: { shutdown_timeout_seconds: 0 }\n");
        Assert.Equal(0, config.Batching.MaxWaitMs);
        Assert.Equal(0, config.Host.ShutdownTimeoutSeconds);
    }

    [Theory]
    [InlineData("device: gpu", "body.device", "must be auto, cpu, cuda or cuda:N, got 'gpu'")]
    [InlineData("device: 'cuda:'", "body.device", "must be auto, cpu, cuda or cuda:N, got 'cuda:'")]
    [InlineData("dtype: fp16", "body.dtype", "must be float32, bfloat16 or float16, got 'fp16'")]
    [InlineData("dtype: Float32", "body.dtype", "must be float32, bfloat16 or float16, got 'Float32'")]
    public void Enum_values_are_checked(string setting, string path, string message)
    {
        var problem = _folder.Problem($"body:\n  checkpoint: ../models/bert\n  {setting}\n");
        Assert.Equal((3, path, message), (problem.Line, problem.Path, problem.Message));
    }

    [Theory]
    [InlineData("auto")]
    [InlineData("cpu")]
    [InlineData("cuda")]
    [InlineData("cuda:0")]
    [InlineData("cuda:3")]
    public void Every_device_form_is_accepted(string device)
    {
        Assert.Equal(device, _folder.Load($"body: {{ checkpoint: ../models/bert, device: '{device}' }}").Body.Device);
    }

    [Fact]
    public void Oversized_and_urls_are_checked()
    {
        var e = _folder.Fail(Body + "host:\n  oversized: drop\n  urls: \"http://127.0.0.1:5080;localhost:80\"\n");
        Assert.Equal(
        [
            new ConfigProblem(3, 14, "host.oversized", "must be truncate or refuse, got 'drop'"),
            new ConfigProblem(4, 9, "host.urls", "must be http:// or https:// addresses separated by ';', got 'localhost:80'"),
        ], e.Problems);
    }

    [Fact]
    public void The_body_section_is_required()
    {
        var e = _folder.Fail("# a deployment\nhost: { urls: \"http://127.0.0.1:1\" }\n");
        Assert.Equal([new ConfigProblem(2, 1, "body", "missing required section 'body' (with at least 'checkpoint:', the model folder)")], e.Problems);
        Assert.Equal(new ConfigProblem(2, 1, "body.checkpoint", "missing required key 'checkpoint' (the model folder)"),
            _folder.Problem("host: {}\nbody: { device: cpu }\n"));
    }

    [Fact]
    public void The_checkpoint_must_be_a_model_folder_with_config_and_vocab()
    {
        var notFound = _folder.Problem("body: { checkpoint: ../models/none }");
        Assert.Equal(new ConfigProblem(1, 21, "body.checkpoint", $"model folder not found: {_folder.PathOf("models/none")}"), notFound);

        Directory.CreateDirectory(_folder.PathOf("models/empty"));
        var empty = _folder.Problem("body: { checkpoint: ../models/empty }");
        Assert.Equal($"model folder {_folder.PathOf("models/empty")} has no config.json and no vocab.txt", empty.Message);

        File.Delete(Path.Combine(_folder.Model, "vocab.txt"));
        var noVocab = _folder.Problem("body:\n  checkpoint: ../models/bert\n");
        Assert.Equal(new ConfigProblem(2, 15, "body.checkpoint", $"model folder {_folder.Model} has no vocab.txt"), noVocab);

        var file = _folder.Problem("body: { checkpoint: ../plugins/Foo/Foo.dll }");
        Assert.Equal($"{_folder.PluginDll} is a file; expected a model folder (config.json, vocab.txt, weights)", file.Message);
    }

    [Fact]
    public void Max_sequence_length_cannot_exceed_the_models_positions()
    {
        var problem = _folder.Problem("body:\n  checkpoint: ../models/bert\n  max_sequence_length: 512\n");
        Assert.Equal(new ConfigProblem(3, 24, "body.max_sequence_length", "must be at most the model's max_position_embeddings (128), got 512"), problem);
        Assert.Equal(128, _folder.Load("body: { checkpoint: ../models/bert, max_sequence_length: 128 }").Body.MaxSequenceLength);
    }

    [Theory]
    [InlineData("prepack_weights")]
    [InlineData("attention_kernel")]
    public void Body_switches_are_on_by_default_and_must_be_booleans(string key)
    {
        static bool Read(BodySection body, string key) => key == "prepack_weights" ? body.PrepackWeights : body.AttentionKernel;
        Assert.True(Read(_folder.Load("body: { checkpoint: ../models/bert }").Body, key));
        Assert.False(Read(_folder.Load($"body: {{ checkpoint: ../models/bert, {key}: false }}").Body, key));
        var problem = _folder.Problem($"body:\n  checkpoint: ../models/bert\n  {key}: sometimes\n");
        Assert.Equal(new ConfigProblem(3, key.Length + 5, $"body.{key}", "must be true or false, got 'sometimes'"), problem);
    }

    [Fact]
    public void Quantization_keys_are_read_and_checked()
    {
        var body = _folder.Load("body:\n  checkpoint: ../models/bert\n  quantize: dynamic_int8\n  quantize_exclude: [encoder.layer.5.output.dense, '*.intermediate.dense']\n").Body;
        Assert.Equal("dynamic_int8", body.Quantize);
        Assert.Equal(["encoder.layer.5.output.dense", "*.intermediate.dense"], body.QuantizeExclude);
        Assert.Equal("none", _folder.Load(Body).Body.Quantize);

        var e = _folder.Fail("body:\n  checkpoint: ../models/bert\n  quantize: int4\n  quantize_exclude: encoder.layer.5\n");
        Assert.Equal(
        [
            new ConfigProblem(3, 13, "body.quantize", "must be none or dynamic_int8, got 'int4'"),
            new ConfigProblem(4, 21, "body.quantize_exclude", "must be a list of Linear names such as encoder.layer.5.output.dense ('*' matches any characters), got 'encoder.layer.5'"),
        ], e.Problems);
        Assert.Equal(new ConfigProblem(3, 13, "body.quantize", "dynamic_int8 quantizes a float32 body; dtype is bfloat16"),
            _folder.Problem("body:\n  checkpoint: ../models/bert\n  quantize: dynamic_int8\n  dtype: bfloat16\n"));
        Assert.Equal(new ConfigProblem(3, 22, "body.quantize_exclude[0]", "must be a Linear name such as encoder.layer.5.output.dense (letters, digits, '_', '.', '*'), got 'layer 5'"),
            _folder.Problem("body:\n  checkpoint: ../models/bert\n  quantize_exclude: ['layer 5']\n"));
    }

    [Fact]
    public void A_model_config_that_is_not_json_is_reported()
    {
        File.WriteAllText(Path.Combine(_folder.Model, "config.json"), "{ not json");
        var problem = _folder.Problem(Body);
        Assert.Equal("body.checkpoint", problem.Path);
        Assert.StartsWith($"{Path.Combine(_folder.Model, "config.json")} is not valid JSON: ", problem.Message);
    }

    [Fact]
    public void Several_problems_are_reported_together_in_file_order_and_formatted_one_per_line()
    {
        var path = _folder.Write("""
            host:
              oversized: maybe
            body:
              checkpoint: ../models/missing
              dtype: double
            batching:
              max_batch_tokens: many
              max_wait_ms: -3
            heads:
              - name: a
                kind: k
                plugin: ../plugins/Foo
              - name: a
                kind: k
                plugin: ../plugins/Bar
            """);
        var e = Assert.Throws<ConfigException>(() => HostConfigLoader.Load(path));
        Assert.Equal(7, e.Problems.Count);
        Assert.Equal(path, e.SourcePath);
        var lookedFor = $"{_folder.PathOf("plugins/Bar/Bar.dll")} or {_folder.PathOf("plugins/Bar/bin/<Release|Debug>/net*/Bar.dll")}";
        Assert.Equal(
        [
            $"{path}:2: host.oversized: must be truncate or refuse, got 'maybe'",
            $"{path}:4: body.checkpoint: model folder not found: {_folder.PathOf("models/missing")}",
            $"{path}:5: body.dtype: must be float32, bfloat16 or float16, got 'double'",
            $"{path}:7: batching.max_batch_tokens: must be an integer, got 'many'",
            $"{path}:8: batching.max_wait_ms: must be at least 0, got -3",
            $"{path}:13: heads[1].name: duplicate head name 'a' (first used at line 10)",
            $"{path}:15: heads[1].plugin: no plugin assembly found for {_folder.PathOf("plugins/Bar")} (looked for {lookedFor})",
        ], e.Lines);
        Assert.Equal(string.Join(Environment.NewLine, e.Lines), e.Message);
    }

    [Fact]
    public void Malformed_yaml_is_one_problem_at_the_parsers_position()
    {
        var e = _folder.Fail("body:\n  checkpoint: ../models/bert\n  device: [cpu\nheads: []\n");
        var problem = Assert.Single(e.Problems);
        Assert.Equal("", problem.Path);
        Assert.True(problem.Line is 3 or 4, $"line {problem.Line}");
        Assert.True(problem.Column > 0);
        Assert.StartsWith("invalid YAML: ", problem.Message);
        Assert.DoesNotContain("Idx:", problem.Message);
        Assert.Matches(@":\d+: invalid YAML: ", e.Message);
    }

    [Fact]
    public void Bad_indentation_is_malformed_yaml()
    {
        var problem = _folder.Problem("body:\n  checkpoint: ../models/bert\n device: cpu\n");
        Assert.Equal(3, problem.Line);
        Assert.StartsWith("invalid YAML: ", problem.Message);
    }

    [Fact]
    public void A_duplicate_key_is_reported()
    {
        var problem = _folder.Problem("body:\n  checkpoint: ../models/bert\n  checkpoint: ../models/bert\n");
        Assert.Equal(3, problem.Line);
        Assert.Contains("checkpoint", problem.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n\n")]
    [InlineData("# only a comment\n")]
    [InlineData("---\n")]
    public void An_empty_file_is_a_problem(string yaml)
    {
        Assert.Equal(new ConfigProblem(1, 1, "", "the file is empty (it needs at least 'body:' with 'checkpoint:')"), _folder.Problem(yaml));
    }

    [Fact]
    public void The_top_level_must_be_a_mapping()
    {
        Assert.Equal(new ConfigProblem(2, 1, "", "the top level must be a mapping of sections (host, body, batching, jobs, auth, telemetry, protocols, heads), got a list"),
            _folder.Problem("# list\n- body\n- heads\n"));
        Assert.Equal("the top level must be a mapping of sections (host, body, batching, jobs, auth, telemetry, protocols, heads), got 'hello'", _folder.Problem("hello").Message);
    }

    [Fact]
    public void A_second_document_is_a_problem()
    {
        var problem = _folder.Problem(Body + "---\n" + Body);
        Assert.Equal((3, "expected one YAML document, found 2"), (problem.Line, problem.Message));
    }

    [Fact]
    public void Problem_formatting_leaves_out_an_empty_path_and_a_zero_line()
    {
        Assert.Equal("f.yaml:3: a.b: bad", new ConfigProblem(3, 1, "a.b", "bad").Format("f.yaml"));
        Assert.Equal("f.yaml:3: bad", new ConfigProblem(3, 1, "", "bad").Format("f.yaml"));
        Assert.Equal("f.yaml: bad", new ConfigProblem(0, 0, "", "bad").Format("f.yaml"));
    }
}
