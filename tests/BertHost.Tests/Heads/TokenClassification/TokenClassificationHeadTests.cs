using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static BertHost.Tests.Heads.TokenClassification.TokenClassificationSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Heads.TokenClassification;

public class TokenClassificationHeadTests
{
    // O, B-PER, I-PER, B-LOC, I-LOC
    private static int ByToken(EncodedSequence s, int p) => s.SequenceIds[p] is null ? 0 : s.Tokens[p] switch
    {
        "john" => 1,
        "new" => 3,
        "york" => 4,
        _ => 0,
    };

    [Fact]
    public void A_long_text_is_split_into_windows_and_every_repetition_is_found_with_offsets_into_the_original()
    {
        using var head = FreshNer();
        const string sentence = "John went to New York. ";
        var text = string.Concat(Enumerable.Repeat(sentence, 20)).TrimEnd();
        var f = head.Encode(Json(new JsonObject { ["text"] = text }.ToJsonString()), Params("""{"aggregation": "simple"}"""));
        Assert.True(f.Sequences.Count >= 3, $"{f.Sequences.Count} windows");
        Assert.All(f.Sequences, s => Assert.True(s.Length <= TinyBert.MaxSequenceLength));
        using var logits = HandLogits([f], 5, ByToken);
        var spans = Spans(DecodeOne(head, f, logits));
        Assert.Equal(40, spans.Count);
        for (var r = 0; r < 20; r++)
        {
            var at = r * sentence.Length;
            Assert.Equal(("PER", "John", at, at + 4), spans[2 * r]);
            Assert.Equal(("LOC", "New York", at + 13, at + 21), spans[2 * r + 1]);
        }
    }

    [Fact]
    public void Every_token_of_a_long_text_is_predicted_once_through_the_real_body()
    {
        var body = TinyBert;
        using var head = FreshNer(options: """{"stride": 8}""");
        var text = string.Join(" ", Enumerable.Range(0, 90).Select(i => i % 3 == 0 ? "playing" : "the dog"));
        var full = body.Tokenizer.Encode(text, null, new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate })[0];
        var f = head.Encode(Json(new JsonObject { ["text"] = text }.ToJsonString()), Params("""{"ignore_labels": []}"""));
        Assert.True(f.Sequences.Count > 3);
        var (batch, logits) = Run(body, head, [f]);
        using (logits)
        {
            var entries = head.Decode(logits, batch)[0].AsArray();
            var content = Enumerable.Range(0, full.Length).Where(p => full.SequenceIds[p] == 0).ToList();
            Assert.Equal(content.Count, entries.Count);
            for (var k = 0; k < content.Count; k++)
            {
                Assert.Equal(full.Offsets[content[k]].Start, (int)entries[k]!["start"]!);
                Assert.Equal(full.Offsets[content[k]].End, (int)entries[k]!["end"]!);
                Assert.Equal(full.Tokens[content[k]], (string)entries[k]!["word"]!);
                Assert.NotNull(entries[k]!["window"]);
            }
        }
    }

    [Fact]
    public void A_deployment_that_refuses_oversized_inputs_refuses_texts_longer_than_one_window()
    {
        var context = Context(TinyBert, kind: "token-classification", labels: Ner);
        using var head = NerKind.CreateHead(new HeadContext
        {
            Name = context.Name, Kind = context.Kind, Labels = context.Labels, Body = context.Body, Tokenizer = context.Tokenizer,
            Checkpoints = context.Checkpoints, Logger = context.Logger, TruncateOversized = false,
        });
        var e = Assert.Throws<HeadInputException>(() => head.Encode(Json($"\"{string.Join(" ", Enumerable.Repeat("dog", 100))}\""), NoParameters));
        Assert.Equal("text", e.Field);
        Assert.Contains("the input is 102 tokens; this head accepts at most 64", e.Message);
        Assert.Single(head.Encode(Json("\"the dog\""), NoParameters).Sequences);
    }

    [Fact]
    public void Simple_grouping_follows_the_BI_rules_for_IOB1_and_BIO_tags()
    {
        using var head = FreshNer();
        // IOB1: I-PER I-PER B-PER I-LOC I-LOC O  ->  PER "John Man", PER "New", LOC "York City"
        var f = head.Encode(Json("\"John Man New York City dog\""), Params("""{"aggregation": "simple"}"""));
        int[] tags = [0, 2, 2, 1, 4, 4, 0, 0];
        using var logits = HandLogits([f], 5, (s, p) => tags[p]);
        Assert.Equal([("PER", "John Man", 0, 8), ("PER", "New", 9, 12), ("LOC", "York City", 13, 22)], Spans(DecodeOne(head, f, logits)));

        // BIO: B-PER I-PER B-PER B-LOC I-PER -> PER, PER, LOC, PER (another type never continues a group); O is dropped
        var g = head.Encode(Json("\"John Man New York City dog\""), Params("""{"aggregation": "simple"}"""));
        int[] bio = [0, 1, 2, 1, 3, 2, 0, 0];
        using var bioLogits = HandLogits([g], 5, (s, p) => bio[p]);
        Assert.Equal(["PER", "PER", "LOC", "PER"], Spans(DecodeOne(head, g, bioLogits)).Select(s => s.Label));

        // ignore_labels [] keeps the O group; none lists tokens with their window index
        var h = head.Encode(Json("\"John Man New York City dog\""), Params("""{"aggregation": "simple", "ignore_labels": []}"""));
        using var hLogits = HandLogits([h], 5, (s, p) => bio[p]);
        Assert.Equal(["PER", "PER", "LOC", "PER", "O"], Spans(DecodeOne(head, h, hLogits)).Select(s => s.Label));
        var n = head.Encode(Json("\"John Man New York City dog\""), Params("""{"aggregation": "none", "ignore_labels": ["O", "I-PER"]}"""));
        using var nLogits = HandLogits([n], 5, (s, p) => bio[p]);
        var none = DecodeOne(head, n, nLogits);
        Assert.Equal([1, 3, 4], none.Select(e => (int)e!["index"]!));
        Assert.Equal(["B-PER", "B-PER", "B-LOC"], none.Select(e => (string)e!["entity"]!));
        Assert.Null(none[0]!["window"]);
    }

    [Fact]
    public void Word_strategies_decide_per_word_first_max_and_average()
    {
        using var head = FreshNer();
        // "playing" = play ##ing: play leans B-LOC (logit 3), ##ing is sure of B-PER (logit 10)
        HeadFeatures Encode(string strategy) => head.Encode(Json("\"John playing\""), Params($$"""{"aggregation": "{{strategy}}"}"""));
        int Pick(EncodedSequence s, int p) => s.Tokens[p] switch { "play" => 3, "##ing" => 1, "john" => 1, _ => 0 };
        float High(EncodedSequence s, int p) => s.Tokens[p] == "play" ? 3f : 10f;
        JsonArray Decode(string strategy)
        {
            var f = Encode(strategy);
            var seq = f.Sequences[0];
            var values = new float[seq.Length * 5];
            for (var p = 0; p < seq.Length; p++) values[p * 5 + Pick(seq, p)] = High(seq, p);
            using var logits = tensor(values, [1, seq.Length, 5]);
            return DecodeOne(head, f, logits);
        }
        Assert.Equal([("PER", "John", 0, 4), ("LOC", "playing", 5, 12)], Spans(Decode("first")));
        Assert.Equal([("PER", "John", 0, 4), ("PER", "playing", 5, 12)], Spans(Decode("max")));
        Assert.Equal([("PER", "John", 0, 4), ("PER", "playing", 5, 12)], Spans(Decode("average")));
        Assert.Equal([("PER", "John", 0, 4), ("LOC", "play", 5, 9), ("PER", "ing", 9, 12)], Spans(Decode("simple")));

        // average: the mean of the two distributions, its argmax and that mean as the score
        var e3 = Math.Exp(3);
        var e10 = Math.Exp(10);
        var mean = (1 / (e3 + 4) + e10 / (e10 + 4)) / 2;
        Assert.Equal(mean, (double)Decode("average")[1]!["score"]!, 6);
        var john = e10 / (e10 + 4);
        Assert.Equal(john, (double)Decode("first")[0]!["score"]!, 6);
    }

    [Fact]
    public void Pre_split_words_use_word_ids_and_offsets_into_the_joined_text()
    {
        using var head = FreshNer();
        var f = head.Encode(Json("""{"tokens": ["John", "went", "to", "New", "York", "."]}"""), Params("""{"aggregation": "first"}"""));
        using var logits = HandLogits([f], 5, ByToken);
        Assert.Equal([("PER", "John", 0, 4), ("LOC", "New York", 13, 21)], Spans(DecodeOne(head, f, logits)));
    }

    [Theory]
    [InlineData("{}", "text", "text is missing")]
    [InlineData("""{"text": 3}""", "text", "text must be a string")]
    [InlineData("""{"text": " "}""", "text", "text is empty")]
    [InlineData("""{"tokens": "a b"}""", "tokens", "tokens must be a list of words")]
    [InlineData("""{"tokens": []}""", "tokens", "tokens is empty")]
    [InlineData("""{"tokens": ["a", 1]}""", "tokens[1]", "must be a string")]
    [InlineData("""{"text": "a", "tokens": ["a"]}""", "tokens", "either text or tokens")]
    [InlineData("""{"txt": "a"}""", "txt", "unknown input field 'txt'")]
    [InlineData("42", "text", "the input must be a string")]
    public void Bad_inputs_name_the_field(string input, string field, string message)
    {
        using var head = FreshNer();
        var e = Assert.Throws<HeadInputException>(() => head.Encode(Json(input), NoParameters));
        Assert.Equal(field, e.Field);
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("""{"aggregation": "longest"}""", "parameters.aggregation")]
    [InlineData("""{"aggregation": 1}""", "parameters.aggregation")]
    [InlineData("""{"ignore_labels": "O"}""", "parameters.ignore_labels")]
    public void Bad_parameters_name_the_field(string parameters, string field)
    {
        using var head = FreshNer();
        Assert.Equal(field, Assert.Throws<HeadInputException>(() => head.Encode(Json("\"hi\""), Json(parameters))).Field);
    }

    [Theory]
    [InlineData("""{"layer": [-1]}""", "options.layer", "unknown option 'layer'")]
    [InlineData("""{"layers": []}""", "options.layers", "non-empty list")]
    [InlineData("""{"layers": [-4]}""", "options.layers[0]", "layer -4 does not exist")]
    [InlineData("""{"layers": [-1, 2]}""", "options.layers[1]", "listed twice")]
    [InlineData("""{"stride": 62}""", "options.stride", "must be smaller than the 62 text tokens")]
    [InlineData("""{"max_length": 20, "stride": 18}""", "options.stride", "must be smaller than the 18 text tokens")]
    [InlineData("""{"scheme": "bioes"}""", "options.scheme", "not one of bio, iob1")]
    [InlineData("""{"dropout": 1}""", "options.dropout", "[0, 1)")]
    public void Bad_options_name_the_field(string options, string field, string message)
    {
        var e = Assert.Throws<HeadConfigurationException>(() => FreshNer(options: options));
        Assert.Equal(field, e.Field);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Labels_are_required_and_distinct()
    {
        Assert.Contains("needs labels", Assert.Throws<HeadConfigurationException>(() =>
            NerKind.CreateHead(Context(TinyBert, kind: "token-classification"))).Message);
        Assert.Contains("listed twice", Assert.Throws<HeadConfigurationException>(() => FreshNer(labels: ["O", "O"])).Message);
    }

    [Fact]
    public void Concatenated_layers_feed_the_classifier_and_are_requested_from_the_body()
    {
        var body = TinyBert;
        using var head = FreshNer(options: """{"layers": [-1, 0, 1], "dropout": 0.0}""");
        Assert.Equal([0, 1], head.Requirements.HiddenLayers!.Select(l => l + 3));
        var p = head.Module.named_parameters().ToDictionary(x => x.name, x => (Tensor)x.parameter);
        Assert.Equal([5L, 96L], p["classifier.weight"].shape);
        Assert.Equal(0.0, p["classifier.bias"].abs().sum().item<float>());
        var f = head.Encode(Json("\"the dog\""), NoParameters);
        var (_, logits) = Run(body, head, [f]);
        using (logits)
        {
            using var output = body.Forward(Core.Text.PaddedBatch.Create([f.Sequences[0]], 0), outputHiddenStates: true);
            using var features = cat([output.LastHiddenState, output.HiddenState(0), output.HiddenState(1)], -1);
            using var expected = features.matmul(p["classifier.weight"].t()).add(p["classifier.bias"]);
            Assert.True(Support.ReferenceOutputs.MaxAbsDiff(expected, logits) < 1e-5);
        }
        using var plain = FreshNer();
        Assert.Null(plain.Requirements.HiddenLayers);
        using var hidden = FreshNer(options: """{"hidden_size": 8, "activation": "relu"}""");
        Assert.Equal(["classifier.bias", "classifier.weight", "hidden.bias", "hidden.weight"], hidden.Module.named_parameters().Select(x => x.name).Order());
    }

    [Fact]
    public void Saved_heads_reload_with_the_same_outputs_labels_and_options()
    {
        var body = TinyBert;
        var folder = TempFolder();
        using var head = FreshNer(options: """{"layers": [-1, -2], "hidden_size": 8, "scheme": "iob1", "stride": 4}""", seed: 3);
        head.Save(folder, new HeadSaveInfo(body.Fingerprint, new Dictionary<string, double> { ["f1"] = 0.5 }));
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "head.json")))!.AsObject();
        Assert.Equal("token-classification", (string)manifest["kind"]!);
        Assert.Equal("iob1", (string)manifest["options"]!["scheme"]!);
        Assert.Equal(Ner, manifest["labels"]!.AsArray().Select(n => (string)n!));

        using var reloaded = NerKind.CreateHead(Context(body, kind: "token-classification", weights: folder));
        Assert.Equal(head.Labels, reloaded.Labels);
        Assert.Equal("head-folder", (string)reloaded.Describe()["weights"]!);
        Assert.Equal(4, (int)reloaded.Describe()["stride"]!);
        var parameters = Json("""{"ignore_labels": []}""");
        Assert.Equal(Predict(body, head, parameters, "\"John went to New York\"")[0].ToJsonString(),
            Predict(body, reloaded, parameters, "\"John went to New York\"")[0].ToJsonString());

        var e = Assert.Throws<HeadConfigurationException>(() => NerKind.CreateHead(Context(body, kind: "token-classification", weights: folder, options: """{"scheme": "bio"}""")));
        Assert.Equal("options.scheme", e.Field);
        Assert.Equal("labels", Assert.Throws<HeadConfigurationException>(() =>
            NerKind.CreateHead(Context(body, kind: "token-classification", weights: folder, labels: ["O", "B-X"]))).Field);
    }
}
