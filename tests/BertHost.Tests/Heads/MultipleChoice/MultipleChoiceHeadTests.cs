using BertHost.Abstractions.Heads;
using BertHost.Tests.Support;
using static BertHost.Tests.Heads.MultipleChoice.McSupport;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;
using BertHost.Core.Body;

namespace BertHost.Tests.Heads.MultipleChoice;

public class MultipleChoiceHeadTests
{
    private static Dictionary<string, Tensor> Parameters(IHead head) =>
        head.Module.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    [Fact]
    public void The_plugin_offers_the_multiple_choice_kind()
    {
        Assert.Equal("multiple-choice", McKind.Name);
        Assert.EndsWith("BertHost.Heads.MultipleChoice.dll", McKind.AssemblyPath);
    }

    [Fact]
    public void A_fresh_head_has_HF_parameter_names_seeded_normal_weights_and_no_labels()
    {
        using var head = Head();
        var p = Parameters(head);
        Assert.Equal(["classifier.bias", "classifier.weight"], p.Keys.Order());
        Assert.Equal([1L, 32L], p["classifier.weight"].shape);
        Assert.Equal([1L], p["classifier.bias"].shape);
        Assert.Equal(0f, p["classifier.bias"].item<float>());
        Assert.InRange(p["classifier.weight"].std().item<float>(), 0.01, 0.03);   // initializer_range 0.02
        Assert.Empty(head.Labels);
        Assert.Null(head.TrainedOnFingerprint);
        Assert.Equal("multiple-choice", head.Kind);

        using var same = Head();
        using var other = Head(seed: 7);
        Assert.True(Parameters(same)["classifier.weight"].eq(p["classifier.weight"]).all().item<bool>());
        Assert.False(Parameters(other)["classifier.weight"].eq(p["classifier.weight"]).all().item<bool>());
    }

    [Fact]
    public void Each_choice_is_a_pair_with_the_context_and_the_question_is_prepended_to_every_choice()
    {
        using var head = Head();
        var tok = TinyBert.Tokenizer;
        var plain = Encode(head, """{"context": "the dog sat", "choices": ["on the mat", "in the city", "at home"]}""");
        Assert.Equal(3, plain.Sequences.Count);
        Assert.Equal(tok.Encode("the dog sat", "in the city")[0].InputIds, plain.Sequences[1].InputIds);
        Assert.Equal(tok.Encode("the dog sat", "in the city")[0].TokenTypeIds, plain.Sequences[1].TokenTypeIds);
        Assert.Equal(["on the mat", "in the city", "at home"], Choices(plain));

        var asked = Encode(head, """{"context": "the dog sat", "question": "then it", "choices": ["went home", "said no"]}""");
        Assert.Equal(tok.Encode("the dog sat", "then it went home")[0].InputIds, asked.Sequences[0].InputIds);
        Assert.Equal(tok.Encode("the dog sat", "then it said no")[0].InputIds, asked.Sequences[1].InputIds);
        Assert.Equal(asked.Sequences.Sum(s => s.Length), asked.TokenCount);
    }

    [Fact]
    public void Output_has_choice_label_scores_and_probabilities()
    {
        using var head = Head(weights: HfFolder);
        var r = PredictOne(head, """{"context": "the man went home", "choices": ["he was happy", "the dog sat", "she said no"]}""");
        var scores = r["scores"]!.AsArray().Select(s => (double)s!).ToArray();
        var probabilities = r["probabilities"]!.AsArray().Select(s => (double)s!).ToArray();
        Assert.Equal(3, scores.Length);
        Assert.Equal(1.0, probabilities.Sum(), 6);
        var exp = scores.Select(s => Math.Exp(s - scores.Max())).ToArray();
        for (var j = 0; j < 3; j++) Assert.Equal(exp[j] / exp.Sum(), probabilities[j], 6);
        var best = Array.IndexOf(scores, scores.Max());
        Assert.Equal(best, (int)r["choice"]!);
        Assert.Equal(new[] { "he was happy", "the dog sat", "she said no" }[best], (string)r["label"]!);
        Assert.Equal(["choice", "label", "scores", "probabilities"], r.AsObject().Select(kv => kv.Key));
    }

    [Theory]
    [InlineData("\"just a string\"", "context")]
    [InlineData("""{"choices": ["a", "b"]}""", "context")]
    [InlineData("""{"context": "", "choices": ["a", "b"]}""", "context")]
    [InlineData("""{"context": 3, "choices": ["a", "b"]}""", "context")]
    [InlineData("""{"context": "the dog"}""", "choices")]
    [InlineData("""{"context": "the dog", "choices": "a, b"}""", "choices")]
    [InlineData("""{"context": "the dog", "choices": ["a"]}""", "choices")]
    [InlineData("""{"context": "the dog", "choices": ["a", "b", 3]}""", "choices[2]")]
    [InlineData("""{"context": "the dog", "choices": ["a", " ", "c"]}""", "choices[1]")]
    [InlineData("""{"context": "the dog", "choices": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}""", "choices")]
    [InlineData("""{"context": "the dog", "choices": ["a", "b"], "question": 5}""", "question")]
    [InlineData("""{"context": "the dog", "choices": ["a", "b"], "label": 0}""", "label")]
    public void Bad_input_names_the_field(string input, string field)
    {
        using var head = Head();
        var e = Assert.Throws<HeadInputException>(() => Encode(head, input));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void Max_choices_is_an_option()
    {
        using var head = Head(options: """{"max_choices": 3}""");
        var e = Assert.Throws<HeadInputException>(() => Encode(head, """{"context": "x", "choices": ["a", "b", "c", "d"]}"""));
        Assert.Equal("choices", e.Field);
        Assert.Contains("at most 3", e.Message);
        Assert.Equal(3, Encode(head, """{"context": "x", "choices": ["a", "b", "c"]}""").Sequences.Count);
        Assert.Equal(8, (int)Head().Describe()["max_choices"]!);
    }

    [Fact]
    public void Long_pairs_are_truncated_longest_first_or_only_first_or_refused()
    {
        var context = string.Join(" ", Enumerable.Repeat("the dog", 12));
        var input = $$"""{"context": "{{context}}", "choices": ["a", "she went to the city next week"]}""";
        var tok = TinyBert.Tokenizer;
        using var longest = Head(options: """{"max_length": 12}""");
        var f = Encode(longest, input);
        Assert.All(f.Sequences, s => Assert.True(s.Length <= 12));
        Assert.Equal(tok.Encode(context, "she went to the city next week", new() { MaxLength = 12 })[0].InputIds, f.Sequences[1].InputIds);

        using var onlyFirst = Head(options: """{"max_length": 12, "truncation": "only_first"}""");
        var g = Encode(onlyFirst, input);
        Assert.Equal(12, g.Sequences[1].Length);
        Assert.Equal(8, g.Sequences[1].TokenTypeIds.Count(t => t == 1));   // the choice is kept whole (+ its [SEP])
        var tooLong = Assert.Throws<HeadInputException>(() => Encode(onlyFirst,
            """{"context": "x", "choices": ["a", "she went to the city next week and then to the store"]}"""));
        Assert.Equal("choices[1]", tooLong.Field);

        using var refusing = Head(options: """{"max_length": 12}""", truncate: false);
        var e = Assert.Throws<HeadInputException>(() => Encode(refusing, input));
        Assert.Equal("choices[0]", e.Field);
        Assert.Contains("accepts at most 12", e.Message);
    }

    [Theory]
    [InlineData("""{"pooling": "max"}""", "options.pooling")]
    [InlineData("""{"max_choices": 1}""", "options.max_choices")]
    [InlineData("""{"dropout": 1.5}""", "options.dropout")]
    [InlineData("""{"truncation": "only_second"}""", "options.truncation")]
    [InlineData("""{"labels": 2}""", "options.labels")]
    public void Bad_options_name_the_key(string options, string field)
    {
        var e = Assert.Throws<HeadConfigurationException>(() => Head(options: options));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void Labels_are_refused_and_the_pooler_needs_a_body_with_one()
    {
        var c = Context(TinyBert, kind: "multiple-choice", labels: ["a", "b"]);
        Assert.Equal("labels", Assert.Throws<HeadConfigurationException>(() => McKind.CreateHead(c)).Field);

        var noPooler = Core.Body.BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert-no-pooler"), new Core.Body.BodyOptions { Device = "cpu" });
        try
        {
            Assert.Equal("options.pooling", Assert.Throws<HeadConfigurationException>(() => Head(body: noPooler)).Field);
            using var cls = Head(options: """{"pooling": "cls"}""", body: noPooler);
            Assert.False(cls.Requirements.PooledOutput);
            var r = Predict(noPooler, cls, """{"context": "the dog", "choices": ["sat", "ran", "is happy"]}""")[0];
            Assert.Equal(3, r["probabilities"]!.AsArray().Count);
        }
        finally
        {
            noPooler.Dispose();
        }
    }

    [Fact]
    public void A_saved_head_reloads_with_the_same_scores_and_its_options()
    {
        const string input = """{"context": "the dog sat on the mat", "question": "then", "choices": ["it ran", "she said no", "the cat sat"]}""";
        using var head = Head(options: """{"pooling": "mean", "max_choices": 5, "dropout": 0.2}""", seed: 3);
        var before = PredictOne(head, input);
        var folder = TempFolder();
        head.Save(folder, new HeadSaveInfo(TinyBert.Fingerprint, new Dictionary<string, double> { ["accuracy"] = 0.5 }));
        Assert.True(File.Exists(Path.Combine(folder, "head.json")));
        Assert.True(File.Exists(Path.Combine(folder, "head.safetensors")));
        Assert.Equal(TinyBert.Fingerprint, head.TrainedOnFingerprint);

        using var loaded = Head(weights: folder);
        Assert.Equal("head-folder", (string)loaded.Describe()["weights"]!);
        Assert.Equal("mean", (string)loaded.Describe()["options"]!["pooling"]!);
        Assert.Equal(5, (int)loaded.Describe()["max_choices"]!);
        Assert.Equal(0.2, (double)loaded.Describe()["options"]!["dropout"]!, 6);
        Assert.Equal(TinyBert.Fingerprint, loaded.TrainedOnFingerprint);
        var after = PredictOne(loaded, input);
        Assert.Equal(before.ToJsonString(), after.ToJsonString());

        var e = Assert.Throws<HeadConfigurationException>(() => Head(weights: folder, options: """{"pooling": "cls"}"""));
        Assert.Equal("options.pooling", e.Field);
        using var moreChoices = Head(weights: folder, options: """{"max_choices": 6}""");
        Assert.Equal(6, (int)moreChoices.Describe()["max_choices"]!);

        var wrongKind = TempFolder();
        using (var cls = TextClassification.CreateHead(Context(TinyBert, labels: ["a", "b"])))
            cls.Save(wrongKind, new HeadSaveInfo(TinyBert.Fingerprint));
        var k = Assert.Throws<HeadConfigurationException>(() => Head(weights: wrongKind));
        Assert.Equal("weights", k.Field);
        Assert.Contains("'text-classification' head, not a multiple-choice head", k.Message);
    }
}
