using System.Text.Json;
using BertHost.Core.Config;
using BertHost.Core.Plugins;

namespace BertHost.Tests.Config;

/// <summary><c>heads:</c>: names, kinds, plugins and their sha256 pins, labels against weights, options.</summary>
public sealed class HeadConfigTests : IDisposable
{
    private readonly ConfigFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private const string Body = "body: { checkpoint: ../models/bert }\nheads:\n";

    /// <summary>A file whose heads start at line 3, the given head's first key on that line.</summary>
    private static string Heads(string heads) => Body + heads;

    [Fact]
    public void A_plugin_can_be_a_published_folder_a_project_folder_or_a_dll()
    {
        var project = Directory.CreateDirectory(_folder.PathOf("plugins/Proj/bin/Release/net10.0")).FullName;
        File.WriteAllText(Path.Combine(project, "Proj.dll"), "x");
        var config = _folder.Load(Heads("""
              - { name: a, kind: k, plugin: ../plugins/Foo }
              - { name: b, kind: k, plugin: ../plugins/Proj }
              - { name: c, kind: k, plugin: ../plugins/Foo/Foo.dll }
            """));
        Assert.Equal([_folder.Plugin, _folder.PathOf("plugins/Proj"), _folder.PluginDll], config.Heads.Select(h => h.Plugin));
    }

    [Fact]
    public void A_plugin_without_an_assembly_says_where_it_looked()
    {
        Directory.CreateDirectory(_folder.PathOf("plugins/Empty"));
        var e = _folder.Fail(Heads("""
              - { name: a, kind: k, plugin: ../plugins/Empty }
              - { name: b, kind: k, plugin: ../plugins/Other.dll }
            """));
        var folder = _folder.PathOf("plugins/Empty");
        Assert.Equal(
        [
            new ConfigProblem(3, 33, "heads[0].plugin", $"no plugin assembly found for {folder} (looked for {folder}/Empty.dll or {folder}/bin/<Release|Debug>/net*/Empty.dll)") { HeadPluginOnly = true },
            new ConfigProblem(4, 33, "heads[1].plugin", $"no plugin assembly found for {_folder.PathOf("plugins/Other.dll")} (looked for {_folder.PathOf("plugins/Other.dll")})") { HeadPluginOnly = true },
        ], e.Problems);
    }

    [Fact]
    public void A_matching_sha256_pin_is_accepted_in_either_case()
    {
        var sha = PluginPaths.Sha256Of(_folder.PluginDll);
        var config = _folder.Load(Heads($"""
              - {"{"} name: a, kind: k, plugin: ../plugins/Foo, sha256: {sha} {"}"}
              - {"{"} name: b, kind: k, plugin: ../plugins/Foo/Foo.dll, sha256: "{sha.ToUpperInvariant()}" {"}"}
            """));
        Assert.All(config.Heads, h => Assert.Equal(sha, h.Sha256));
    }

    [Fact]
    public void A_sha256_mismatch_shows_both_hashes()
    {
        var actual = PluginPaths.Sha256Of(_folder.PluginDll);
        var pinned = new string('a', 64);
        var problem = _folder.Problem(Heads($"""
              - name: a
                kind: k
                plugin: ../plugins/Foo
                sha256: {pinned}
            """));
        Assert.Equal(new ConfigProblem(6, 13, "heads[0].sha256", $"sha256 mismatch for {_folder.PluginDll}: expected {pinned}, actual {actual}"), problem);
        // Unlike a plugin that is not there, a pin mismatch is not tolerated when serving: serve refuses to start.
        var path = _folder.Write(Heads($"""
              - name: a
                kind: k
                plugin: ../plugins/Foo
                sha256: {pinned}
            """), "serve.yaml");
        Assert.Throws<ConfigException>(() => HostConfigLoader.Load(path, tolerateHeadPluginProblems: true));
    }

    [Theory]
    [InlineData("0123abcd")]
    [InlineData("zz23456789012345678901234567890123456789012345678901234567890123")]
    public void A_malformed_sha256_is_an_error(string sha)
    {
        var problem = _folder.Problem(Heads($"  - {{ name: a, kind: k, plugin: ../plugins/Foo, sha256: {sha} }}\n"));
        Assert.Equal(("heads[0].sha256", $"must be 64 hexadecimal characters (the SHA-256 of the plugin's main assembly), got '{sha}' ({sha.Length} characters)"),
            (problem.Path, problem.Message));
    }

    [Fact]
    public void Duplicate_names_point_at_the_first_one()
    {
        var e = _folder.Fail(Heads("""
              - name: sentiment
                kind: k
                plugin: ../plugins/Foo
              - name: other
                kind: k
                plugin: ../plugins/Foo
              - name: sentiment
                kind: k2
                plugin: ../plugins/Foo
              - name: Other
                kind: k
                plugin: ../plugins/Foo
            """));
        Assert.Equal(
        [
            new ConfigProblem(9, 11, "heads[2].name", "duplicate head name 'sentiment' (first used at line 3)"),
            new ConfigProblem(12, 11, "heads[3].name", "duplicate head name 'Other' (first used at line 6 as 'other'; names are compared ignoring case because they appear in URLs)"),
        ], e.Problems);
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("-lead")]
    [InlineData("a/b")]
    [InlineData("é")]
    public void Names_must_be_url_safe(string name)
    {
        var problem = _folder.Problem(Heads($"  - {{ name: '{name}', kind: k, plugin: ../plugins/Foo }}\n"));
        Assert.Equal(("heads[0].name", $"'{name}' is not a valid head name (letters, digits, '_', '.' and '-', starting with a letter or digit: it appears in URLs)"),
            (problem.Path, problem.Message));
    }

    [Fact]
    public void Name_kind_and_plugin_are_required()
    {
        var e = _folder.Fail(Heads("""
              - labels: [a]
              - name: b
                kind: ""
                plugin:
              - not a mapping
            """));
        Assert.Equal(
        [
            new ConfigProblem(3, 5, "heads[0].name", "missing required key 'name'"),
            new ConfigProblem(3, 5, "heads[0].kind", "missing required key 'kind' (e.g. text-classification)"),
            new ConfigProblem(3, 5, "heads[0].plugin", "missing required key 'plugin' (a plugin folder or .dll)"),
            new ConfigProblem(5, 11, "heads[1].kind", "must not be empty"),
            new ConfigProblem(6, 12, "heads[1].plugin", "must not be empty (a plugin folder or .dll)"),
            new ConfigProblem(7, 5, "heads[2]", "a head must be a mapping (name, kind, plugin, sha256, labels, weights, options, required, adapter), got 'not a mapping'"),
        ], e.Problems);
    }

    [Fact]
    public void Labels_must_be_unique_non_empty_strings()
    {
        var e = _folder.Fail(Heads("""
              - { name: a, kind: k, plugin: ../plugins/Foo, labels: [x, "", y, x, [z]] }
              - { name: b, kind: k, plugin: ../plugins/Foo, labels: x }
              - { name: c, kind: k, plugin: ../plugins/Foo, labels: [] }
            """));
        Assert.Equal(
        [
            new ConfigProblem(3, 61, "heads[0].labels[1]", "must be a non-empty string"),
            new ConfigProblem(3, 68, "heads[0].labels[3]", "duplicate label 'x' (also heads[0].labels[0])"),
            new ConfigProblem(3, 71, "heads[0].labels[4]", "must be a string, got a list"),
            new ConfigProblem(4, 57, "heads[1].labels", "must be a list of strings, got 'x'"),
            new ConfigProblem(5, 57, "heads[2].labels", "must list at least one label (or leave 'labels' out)"),
        ], e.Problems);
    }

    [Fact]
    public void Weights_must_exist_and_may_be_a_folder_or_a_file()
    {
        _folder.MakeWeights("config/heads/a");
        File.WriteAllText(_folder.PathOf("config/heads/b.safetensors"), "x");
        var config = _folder.Load(Heads("""
              - { name: a, kind: k, plugin: ../plugins/Foo, weights: heads/a }
              - { name: b, kind: k, plugin: ../plugins/Foo, weights: heads/b.safetensors }
            """));
        Assert.Equal([_folder.PathOf("config/heads/a"), _folder.PathOf("config/heads/b.safetensors")], config.Heads.Select(h => h.Weights));

        var problem = _folder.Problem(Heads("  - { name: a, kind: k, plugin: ../plugins/Foo, weights: heads/none }\n"));
        Assert.Equal(new ConfigProblem(3, 58, "heads[0].weights", $"head weights not found: {_folder.PathOf("config/heads/none")}"), problem);
    }

    [Fact]
    public void Labels_must_equal_a_hugging_face_id2label_in_order()
    {
        _folder.MakeWeights("config/hf", configJson: """{ "architectures": ["BertForSequenceClassification"], "id2label": { "1": "positive", "0": "negative" } }""");
        Assert.Equal(["negative", "positive"],
            _folder.Load(Heads("  - { name: a, kind: k, plugin: ../plugins/Foo, weights: hf, labels: [negative, positive] }\n")).Heads[0].Labels);

        var problem = _folder.Problem(Heads("""
              - name: a
                kind: k
                plugin: ../plugins/Foo
                weights: hf
                labels: [positive, negative]
            """));
        Assert.Equal(new ConfigProblem(7, 13, "heads[0].labels",
            $"labels [positive, negative] differ from the weights' labels [negative, positive] (in {_folder.PathOf("config/hf/config.json")} id2label)"), problem);
    }

    [Fact]
    public void Transformers_placeholder_labels_only_fix_the_count()
    {
        _folder.MakeWeights("config/hf", configJson: """{ "id2label": { "0": "LABEL_0", "1": "LABEL_1" } }""");
        Assert.Equal(["neg", "pos"], _folder.Load(Heads("  - { name: a, kind: k, plugin: ../plugins/Foo, weights: hf, labels: [neg, pos] }\n")).Heads[0].Labels);
        var problem = _folder.Problem(Heads("  - { name: a, kind: k, plugin: ../plugins/Foo, weights: hf, labels: [a, b, c] }\n"));
        Assert.Equal($"labels [a, b, c] are 3 but the weights have 2 [LABEL_0, LABEL_1] (in {_folder.PathOf("config/hf/config.json")} id2label)", problem.Message);
    }

    [Fact]
    public void Labels_must_equal_a_head_json_manifest()
    {
        _folder.MakeWeights("config/heads/ner", headJson: """{ "kind": "token-classification", "labels": ["O", "B-PER", "I-PER"] }""");
        Assert.NotNull(_folder.Load(Heads("  - { name: a, kind: k, plugin: ../plugins/Foo, weights: heads/ner, labels: [O, B-PER, I-PER] }\n")));
        // Without YAML labels, nothing to compare.
        Assert.Null(_folder.Load(Heads("  - { name: a, kind: k, plugin: ../plugins/Foo, weights: heads/ner }\n")).Heads[0].Labels);

        var problem = _folder.Problem(Heads("  - { name: a, kind: k, plugin: ../plugins/Foo, weights: heads/ner, labels: [O, B-PER] }\n"));
        Assert.Equal(new ConfigProblem(3, 77, "heads[0].labels",
            $"labels [O, B-PER] differ from the weights' labels [O, B-PER, I-PER] (in {_folder.PathOf("config/heads/ner/head.json")})"), problem);
    }

    [Fact]
    public void A_broken_head_manifest_is_reported_at_the_weights()
    {
        _folder.MakeWeights("config/w", headJson: "{ \"labels\": [1, 2] }");
        var problem = _folder.Problem(Heads("  - { name: a, kind: k, plugin: ../plugins/Foo, weights: w, labels: [a] }\n"));
        Assert.Equal(("heads[0].weights", $"{_folder.PathOf("config/w/head.json")}: \"labels\" must be an array of strings"), (problem.Path, problem.Message));
    }

    [Fact]
    public void Options_become_json_with_yaml_types()
    {
        var config = _folder.Load(Heads("""
              - name: a
                kind: k
                plugin: ../plugins/Foo
                options:
                  pooling: cls
                  dropout: 0.1
                  layers: [-1, -2, +3]
                  big: 12345678901234
                  exp: 1e-3
                  flag: true
                  off: FALSE
                  yes_is_text: yes
                  quoted_number: "42"
                  quoted_bool: 'true'
                  tagged: !!str 7
                  nothing: ~
                  empty:
                  word_null: null
                  version: 1.2.3
                  nested:
                    deeper: { x: 1, y: [a, { z: false }] }
                  list_of_maps:
                    - { k: 1 }
                    - k: two
            """));
        var options = config.Heads[0].Options;
        Assert.Equal(
            """{"pooling":"cls","dropout":0.1,"layers":[-1,-2,3],"big":12345678901234,"exp":0.001,"flag":true,"off":false,"yes_is_text":"yes","quoted_number":"42","quoted_bool":"true","tagged":"7","nothing":null,"empty":null,"word_null":null,"version":"1.2.3","nested":{"deeper":{"x":1,"y":["a",{"z":false}]}},"list_of_maps":[{"k":1},{"k":"two"}]}""",
            options.GetRawText());
        Assert.Equal(JsonValueKind.Number, options.GetProperty("dropout").ValueKind);
        Assert.Equal(0.1, options.GetProperty("dropout").GetDouble());
    }

    [Fact]
    public void Options_substitute_environment_variables_and_keep_their_types()
    {
        var env = new Dictionary<string, string> { ["DROPOUT"] = "0.25", ["NAME"] = "x" };
        // (Unquoted ${...} cannot stand in a YAML flow mapping { }; block style takes it as written.)
        var config = _folder.Load(Heads("""
              - name: a
                kind: k
                plugin: ../plugins/Foo
                options:
                  dropout: ${DROPOUT}
                  quoted: "${DROPOUT}"
                  label: ${NAME}-${MISSING:-y}
            """), n => env.GetValueOrDefault(n));
        Assert.Equal("""{"dropout":0.25,"quoted":"0.25","label":"x-y"}""", config.Heads[0].Options.GetRawText());
    }

    [Fact]
    public void Options_must_be_a_mapping_and_report_their_own_problems()
    {
        var e = _folder.Fail(Heads("""
              - { name: a, kind: k, plugin: ../plugins/Foo, options: [1, 2] }
              - name: b
                kind: k
                plugin: ../plugins/Foo
                options:
                  ok: 1
                  bad: ${UNSET_FOR_TEST}
            """), _ => null);
        Assert.Equal(
        [
            new ConfigProblem(3, 58, "heads[0].options", "must be a mapping (free-form head options), got a list"),
            new ConfigProblem(9, 12, "heads[1].options.bad", "environment variable 'UNSET_FOR_TEST' is not set (write ${UNSET_FOR_TEST:-default} to give a default)"),
        ], e.Problems);
    }

    [Fact]
    public void All_head_problems_of_a_file_are_reported_together()
    {
        var e = _folder.Fail(Heads("""
              - name: "bad name"
                kind: k
                plugin: ../plugins/Nope
                sha256: short
                weights: nowhere
                extra: 1
            """));
        Assert.Equal(["heads[0].name", "heads[0].plugin", "heads[0].sha256", "heads[0].weights", "heads[0].extra"], e.Problems.Select(p => p.Path));
        Assert.Equal([3, 5, 6, 7, 8], e.Problems.Select(p => p.Line));
    }
}
