using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Tests.Support;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;
using BertHost.Core.Body;

namespace BertHost.Tests.Heads.Classification;

public class ClassificationHeadTests
{
    private static readonly string[] Binary = ["negative", "positive"];

    private static IHead Fresh(string? options = null, IReadOnlyList<string>? labels = null, long seed = 42, BertBody? body = null) =>
        TextClassification.CreateHead(Context(body ?? TinyBert, labels: labels ?? Binary, options: options, seed: seed));

    private static Dictionary<string, Tensor> Parameters(IHead head) =>
        head.Module.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    [Fact]
    public void A_fresh_head_has_HF_parameter_names_seeded_normal_weights_and_zero_bias()
    {
        using var head = Fresh(options: """{"hidden_layers": [16, 8]}""");
        var p = Parameters(head);
        Assert.Equal(["classifier.bias", "classifier.weight", "hidden.0.bias", "hidden.0.weight", "hidden.1.bias", "hidden.1.weight"], p.Keys.Order());
        Assert.Equal([2L, 8L], p["classifier.weight"].shape);
        Assert.Equal([16L, 32L], p["hidden.0.weight"].shape);
        Assert.Equal(0.0, p["classifier.bias"].abs().sum().item<float>());
        var std = p["hidden.0.weight"].std().item<float>();
        Assert.InRange(std, 0.015, 0.025);   // initializer_range 0.02
        Assert.Null(head.TrainedOnFingerprint);
        Assert.Equal(ScalarType.Float32, p["classifier.weight"].dtype);

        using var same = Fresh(options: """{"hidden_layers": [16, 8]}""");
        using var other = Fresh(options: """{"hidden_layers": [16, 8]}""", seed: 7);
        Assert.True(Parameters(same)["hidden.0.weight"].eq(p["hidden.0.weight"]).all().item<bool>());
        Assert.False(Parameters(other)["hidden.0.weight"].eq(p["hidden.0.weight"]).all().item<bool>());
    }

    [Fact]
    public void Output_has_label_score_scores_and_optional_top()
    {
        using var head = Fresh(labels: ["a", "b", "c"]);
        var plain = Predict(TinyBert, head, "\"the dog is happy\"")[0]!;
        var scores = plain["scores"]!.AsObject();
        Assert.Equal(["a", "b", "c"], scores.Select(kv => kv.Key));
        Assert.Equal(1.0, scores.Sum(kv => (double)kv.Value!), 6);
        Assert.Equal(scores.MaxBy(kv => (double)kv.Value!).Key, (string)plain["label"]!);
        Assert.Null(plain["top"]);

        var top = Predict(TinyBert, head, Json("""{"top_k": 2}"""), """{"text": "the dog is happy"}""")[0]!["top"]!.AsArray();
        Assert.Equal(2, top.Count);
        Assert.Equal((string)plain["label"]!, (string)top[0]!["label"]!);
        Assert.True((double)top[0]!["score"]! >= (double)top[1]!["score"]!);
        Assert.Equal(3, Predict(TinyBert, head, Json("""{"top_k": 10}"""), "\"x\"")[0]!["top"]!.AsArray().Count);

        var raw = Predict(TinyBert, head, Json("""{"function_to_apply": "none"}"""), "\"the dog is happy\"")[0]!["scores"]!.AsObject();
        var sigmoid = Predict(TinyBert, head, Json("""{"function_to_apply": "sigmoid"}"""), "\"the dog is happy\"")[0]!["scores"]!.AsObject();
        var exp = raw.Select(kv => Math.Exp((double)kv.Value!)).ToArray();
        Assert.Equal(exp[0] / exp.Sum(), (double)scores["a"]!, 6);
        Assert.Equal(1 / (1 + Math.Exp(-(double)raw["b"]!)), (double)sigmoid["b"]!, 6);
    }

    [Fact]
    public void Multi_label_heads_use_sigmoid_and_list_the_labels_above_one_half()
    {
        using var head = Fresh(labels: ["x", "y", "z"], options: """{"problem_type": "multi_label"}""");
        var r = Predict(TinyBert, head, "\"she said no\"")[0]!;
        var scores = r["scores"]!.AsObject().Select(kv => (double)kv.Value!).ToArray();
        Assert.NotEqual(1.0, scores.Sum(), 3);
        Assert.All(scores, s => Assert.InRange(s, 0, 1));
        Assert.Equal(r["scores"]!.AsObject().Where(kv => (double)kv.Value! >= 0.5).Select(kv => kv.Key), r["labels"]!.AsArray().Select(n => (string)n!));
    }

    [Theory]
    [InlineData("{}", "text", "text is missing")]
    [InlineData("""{"text": 3}""", "text", "text must be a string, got the number 3")]
    [InlineData("""{"text": ""}""", "text", "text is empty")]
    [InlineData("\"   \"", "text", "text is empty")]
    [InlineData("""{"text": "a", "text_pair": ["b"]}""", "text_pair", "text_pair must be a string, got a list")]
    [InlineData("""{"text": "a", "txet_pair": "b"}""", "txet_pair", "unknown input field 'txet_pair'")]
    [InlineData("42", "text", "the input must be a string or an object")]
    public void Bad_inputs_name_the_field(string input, string field, string message)
    {
        using var head = Fresh();
        var e = Assert.Throws<HeadInputException>(() => head.Encode(Json(input), NoParameters));
        Assert.Equal(field, e.Field);
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("""{"top_k": 0}""", "parameters.top_k")]
    [InlineData("""{"top_k": "2"}""", "parameters.top_k")]
    [InlineData("""{"function_to_apply": "relu"}""", "parameters.function_to_apply")]
    public void Bad_parameters_name_the_field(string parameters, string field)
    {
        using var head = Fresh();
        Assert.Equal(field, Assert.Throws<HeadInputException>(() => head.Encode(Json("\"hi\""), Json(parameters))).Field);
    }

    [Fact]
    public void Pairs_are_encoded_with_token_types_and_long_inputs_truncated_longest_first()
    {
        using var head = Fresh(options: """{"max_length": 10}""");
        var f = head.Encode(Json("""{"text": "where did the man go", "text_pair": "he went to the city"}"""), NoParameters);
        var s = f.Sequences[0];
        Assert.Equal(10, s.Length);
        Assert.Equal(10, s.TokenTypeIds.Length);
        Assert.Contains(1, s.TokenTypeIds);
        // longest_first, exactly as the body tokenizer does it (its HF parity is tested in Text/)
        var reference = TinyBert.Tokenizer.Encode("where did the man go", "he went to the city",
            new Abstractions.Text.EncodeOptions { MaxLength = 10, Truncation = Abstractions.Text.TruncationStrategy.LongestFirst })[0];
        Assert.Equal(reference.InputIds, s.InputIds);
        Assert.Equal(reference.TokenTypeIds, s.TokenTypeIds);
        Assert.Equal(10, (int)head.Describe()["max_length"]!);

        using var unlimited = Fresh(options: """{"max_length": 4096}""");
        Assert.Equal(TinyBert.MaxSequenceLength, (int)unlimited.Describe()["max_length"]!);
        var longText = string.Join(" ", Enumerable.Repeat("dog", 200));
        Assert.Equal(TinyBert.MaxSequenceLength, unlimited.Encode(Json($"\"{longText}\""), NoParameters).Sequences[0].Length);
    }

    [Theory]
    [InlineData("""{"poling": "cls"}""", "options.poling", "unknown option 'poling'")]
    [InlineData("""{"pooling": "first"}""", "options.pooling", "pooling 'first' is not one of pooler, cls, mean, max")]
    [InlineData("""{"dropout": 1.5}""", "options.dropout", "must be in [0, 1)")]
    [InlineData("""{"hidden_layers": [8, 0]}""", "options.hidden_layers[1]", "at least 1")]
    [InlineData("""{"layer": 3}""", "options.layer", "layer 3 does not exist")]
    [InlineData("""{"layer": 1}""", "options.layer", "cannot be used with pooling 'pooler'")]
    [InlineData("""{"class_weights": [1, 2, 3]}""", "options.class_weights", "3 values but the head has 2 labels")]
    [InlineData("""{"problem_type": "regression"}""", "options.problem_type", "not one of single_label, multi_label")]
    [InlineData("""[1]""", "options", "must be an object")]
    public void Bad_options_name_the_field(string options, string field, string message)
    {
        var e = Assert.Throws<HeadConfigurationException>(() => Fresh(options: options));
        Assert.Equal(field, e.Field);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Labels_are_required_valid_and_distinct()
    {
        Assert.Contains("needs labels", Assert.Throws<HeadConfigurationException>(() =>
            TextClassification.CreateHead(Context(TinyBert))).Message);
        Assert.Contains("at least 2 labels", Assert.Throws<HeadConfigurationException>(() => Fresh(labels: ["only"])).Message);
        Assert.Contains("listed twice", Assert.Throws<HeadConfigurationException>(() => Fresh(labels: ["a", "a"])).Message);
        using var single = Fresh(labels: ["toxic"], options: """{"problem_type": "multi_label"}""");
        Assert.Single(single.Labels);
    }

    [Fact]
    public void Pooler_pooling_needs_a_body_with_a_pooler()
    {
        using var noPooler = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert-no-pooler"), new BodyOptions { Device = "cpu" });
        var e = Assert.Throws<HeadConfigurationException>(() => Fresh(body: noPooler));
        Assert.Equal("options.pooling", e.Field);
        Assert.Contains("no pooler weights", e.Message);
        using var cls = Fresh(body: noPooler, options: """{"pooling": "cls"}""");
        Assert.Equal("negative", Predict(noPooler, cls, "\"hi\"")[0]!["scores"]!.AsObject().First().Key);
    }

    [Theory]
    [InlineData("cls")]
    [InlineData("mean")]
    [InlineData("max")]
    [InlineData("pooler")]
    public void Pooling_modes_feed_the_classifier_what_they_name(string pooling)
    {
        var body = TinyBert;
        using var head = Fresh(options: $$"""{"pooling": "{{pooling}}", "dropout": 0.0}""");
        var features = new[] { "the dog is very happy today", "she said no" }.Select(t => head.Encode(Json($"\"{t}\""), NoParameters)).ToList();
        var (batch, logits) = Run(body, head, features);
        using (logits)
        {
            using var output = body.Forward(Core.Text.PaddedBatch.Create(features.Select(f => f.Sequences[0]).ToList(), 0));
            using var pooled = PoolByHand(output, pooling, features.Select(f => f.Sequences[0].Length).ToArray());
            var p = Parameters(head);
            using var expected = pooled.matmul(p["classifier.weight"].t()).add(p["classifier.bias"]);
            Assert.True(ReferenceOutputs.MaxAbsDiff(expected, logits) < 1e-6);
            Assert.Equal([2L, 2L], logits.shape);
        }
        Assert.Equal(pooling == "pooler", head.Requirements.PooledOutput);
    }

    private static Tensor PoolByHand(Abstractions.BodyOutput output, string pooling, int[] lengths)
    {
        var rows = new List<Tensor>();
        for (var i = 0; i < lengths.Length; i++)
        {
            var real = output.LastHiddenState[i].narrow(0, 0, lengths[i]);
            rows.Add(pooling switch
            {
                "cls" => real[0],
                "mean" => real.mean([0]),
                "max" => real.amax([0]),
                _ => output.PooledOutput[i],
            });
        }
        return stack(rows);
    }

    [Fact]
    public void The_layer_option_pools_an_earlier_hidden_state_and_asks_the_body_for_it()
    {
        var body = TinyBert;
        using var head = Fresh(options: """{"pooling": "cls", "layer": 1, "dropout": 0.0}""");
        Assert.Equal([1], head.Requirements.HiddenLayers!);
        var features = new[] { head.Encode(Json("\"the dog\""), NoParameters) };
        var (_, logits) = Run(body, head, features);
        using (logits)
        {
            using var output = body.Forward(Core.Text.PaddedBatch.Create([features[0].Sequences[0]], 0), outputHiddenStates: true);
            var p = Parameters(head);
            using var expected = output.HiddenState(1).select(1, 0).matmul(p["classifier.weight"].t()).add(p["classifier.bias"]);
            Assert.True(ReferenceOutputs.MaxAbsDiff(expected, logits) < 1e-6);
        }
        using var last = Fresh(options: """{"pooling": "cls", "layer": 2}""");
        Assert.Null(last.Requirements.HiddenLayers);   // layer 2 of 2 is the last layer
    }

    [Fact]
    public void Saved_heads_reload_with_the_same_outputs_labels_options_and_fingerprint()
    {
        var body = TinyBert;
        var folder = TempFolder();
        using var head = Fresh(labels: ["neg", "neu", "pos"], options: """{"pooling": "mean", "hidden_layers": [8], "activation": "gelu"}""", seed: 5);
        head.Save(folder, new HeadSaveInfo(body.Fingerprint, new Dictionary<string, double> { ["accuracy"] = 0.75 }));
        Assert.True(File.Exists(Path.Combine(folder, "head.safetensors")));
        Assert.Empty(Directory.GetFiles(folder, "*.tmp"));

        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "head.json")))!.AsObject();
        Assert.Equal("text-classification", (string)manifest["kind"]!);
        Assert.Equal(["neg", "neu", "pos"], manifest["labels"]!.AsArray().Select(n => (string)n!));
        Assert.Equal("mean", (string)manifest["options"]!["pooling"]!);
        Assert.Equal("gelu", (string)manifest["options"]!["activation"]!);
        Assert.Equal(body.Fingerprint, (string)manifest["body_fingerprint"]!);
        Assert.Equal(0.75, (double)manifest["metrics"]!["accuracy"]!);
        Assert.True(DateTimeOffset.TryParse((string)manifest["saved_at"]!, out _));

        // No labels, no options: both come from the folder.
        using var reloaded = TextClassification.CreateHead(Context(body, weights: folder));
        Assert.Equal(head.Labels, reloaded.Labels);
        Assert.Equal(body.Fingerprint, reloaded.TrainedOnFingerprint);
        Assert.Equal("head-folder", (string)reloaded.Describe()["weights"]!);
        var a = Predict(body, head, "\"the dog is happy\"", "\"no\"");
        var b = Predict(body, reloaded, "\"the dog is happy\"", "\"no\"");
        Assert.Equal(a.Select(n => n.ToJsonString()), b.Select(n => n.ToJsonString()));

        // A setting that changes what the weights mean must agree with the saved one; others may change.
        var e = Assert.Throws<HeadConfigurationException>(() => TextClassification.CreateHead(Context(body, weights: folder, options: """{"pooling": "cls"}""")));
        Assert.Equal("options.pooling", e.Field);
        Assert.Contains("trained with pooling mean, the configuration says cls", e.Message);
        using var moreDropout = TextClassification.CreateHead(Context(body, weights: folder, options: """{"dropout": 0.3, "pooling": "mean"}"""));
        Assert.Equal(0.3, (double)moreDropout.Describe()["options"]!["dropout"]!);

        Assert.Equal("labels", Assert.Throws<HeadConfigurationException>(() =>
            TextClassification.CreateHead(Context(body, weights: folder, labels: ["neg", "pos"]))).Field);
    }

    [Fact]
    public void A_head_folder_saved_on_another_body_loads_but_is_reported_stale()
    {
        var folder = TempFolder();
        using (var head = Fresh()) head.Save(folder, new HeadSaveInfo("sha256:another"));
        using var stale = TextClassification.CreateHead(Context(TinyBert, weights: folder));
        Assert.Equal("sha256:another", stale.TrainedOnFingerprint);
        Assert.True((bool)stale.Describe()["stale"]!);
    }

    [Fact]
    public void Unusable_weights_paths_are_configuration_errors()
    {
        var body = TinyBert;
        var missing = Path.Combine(TempFolder(), "nothing-here");
        Assert.Contains("does not exist", Assert.Throws<HeadConfigurationException>(() => TextClassification.CreateHead(Context(body, labels: Binary, weights: missing))).Message);
        var empty = TempFolder();
        Assert.Contains("neither a head folder", Assert.Throws<HeadConfigurationException>(() => TextClassification.CreateHead(Context(body, labels: Binary, weights: empty))).Message);
        var e = Assert.Throws<HeadConfigurationException>(() => TextClassification.CreateHead(Context(body, labels: Binary, weights: ReferenceOutputs.ModelFolder("tiny-bert"))));
        Assert.Equal("weights", e.Field);
        Assert.Contains("no classifier.* weights", e.Message);

        var wrongShape = TempFolder();
        using (var head = Fresh(options: """{"hidden_layers": [8]}""")) head.Save(wrongShape, new HeadSaveInfo(body.Fingerprint));
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(wrongShape, "head.json")))!.AsObject();
        manifest["options"]!["hidden_layers"] = new JsonArray(4);
        File.WriteAllText(Path.Combine(wrongShape, "head.json"), manifest.ToJsonString());
        var shape = Assert.Throws<HeadConfigurationException>(() => TextClassification.CreateHead(Context(body, weights: wrongShape)));
        Assert.Equal("weights", shape.Field);
        Assert.Contains("hidden.0.weight is [8,32], the head expects [4,32]", shape.Message);
    }
}
