using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Tests.Support;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static BertHost.Tests.Heads.TokenClassification.TokenClassificationSupport;

namespace BertHost.Tests.Heads.TokenClassification;

/// <summary>
/// An imported Hugging Face BertForTokenClassification against the Python reference (make_token_classification_fixtures.py).
/// The body is served from the task folder itself: its bert.* weights are tiny-bert's without the pooler, and the body
/// fingerprint covers the pooler, so tiny-bert (which has one) does not pass the import's body check.
/// </summary>
public class TokenClassificationParityTests
{
    internal static readonly string TokCls = ReferenceOutputs.ModelFolder("tiny-bert-tokcls");
    internal static readonly string[] NerLabels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"];

    private static JsonElement Expected()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("models", "tiny-bert-tokcls.expected.json")));
        return doc.RootElement.Clone();
    }

    private static string InputOf(JsonElement c) => c.TryGetProperty("text", out var t)
        ? new JsonObject { ["text"] = t.GetString() }.ToJsonString()
        : new JsonObject { ["tokens"] = JsonNode.Parse(c.GetProperty("tokens").GetRawText()) }.ToJsonString();

    [Fact]
    public void An_imported_BertForTokenClassification_matches_the_pipeline_for_every_aggregation()
    {
        var body = TokClsBody;
        using var head = NerKind.CreateHead(Context(body, kind: "token-classification", weights: TokCls));
        Assert.Equal(NerLabels, head.Labels);
        Assert.Equal(body.Fingerprint, head.TrainedOnFingerprint);
        Assert.Equal("huggingface", (string)head.Describe()["weights"]!);

        var cases = Expected().GetProperty("cases").EnumerateArray().ToList();
        foreach (var strategy in new[] { "none_all", "none", "simple", "first", "average", "max" })
        {
            var parameters = strategy == "none_all"
                ? Json("""{"aggregation": "none", "ignore_labels": []}""")
                : Json($$"""{"aggregation": "{{strategy}}"}""");
            var features = cases.Select(c => head.Encode(Json(InputOf(c)), parameters)).ToList();
            for (var i = 0; i < cases.Count; i++)
            {
                var s = Assert.Single(features[i].Sequences);
                Assert.Equal(cases[i].GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()), s.InputIds);
            }
            // one padded batch of every case: padding must not change any row's result
            var (batch, logits) = Run(body, head, features);
            using (logits)
            {
                var results = head.Decode(logits, batch);
                for (var i = 0; i < cases.Count; i++)
                {
                    var want = cases[i].GetProperty("outputs").GetProperty(strategy).EnumerateArray().ToList();
                    var got = results[i].AsArray();
                    var where = $"case {i} ({cases[i].GetProperty("sentence").GetString()}) {strategy}";
                    Assert.True(want.Count == got.Count, $"{where}: {got.Count} entities, expected {want.Count}: {got.ToJsonString()}");
                    for (var k = 0; k < want.Count; k++)
                    {
                        var w = want[k];
                        var g = got[k]!.AsObject();
                        var grouped = !strategy.StartsWith("none");
                        var key = grouped ? "entity_group" : "entity";
                        Assert.Equal(w.GetProperty(key).GetString(), (string)g[key]!);
                        Assert.True(Math.Abs(w.GetProperty("score").GetDouble() - (double)g["score"]!) < 1e-4, $"{where} #{k}: score {(double)g["score"]!} vs {w.GetProperty("score").GetDouble()}");
                        Assert.Equal(w.GetProperty("start").GetInt32(), (int)g["start"]!);
                        Assert.Equal(w.GetProperty("end").GetInt32(), (int)g["end"]!);
                        // groups: the original text slice (the pipeline decodes tokens instead: recorded as "word", lower-cased)
                        Assert.Equal(w.GetProperty(grouped ? "text" : "word").GetString(), (string)g["word"]!);
                        if (grouped)
                        {
                            // the same characters up to case and spacing ("##m" for a lone piece, "new york" for "New York", "city ," for "city,")
                            Assert.Equal(w.GetProperty("word").GetString()!.ToLowerInvariant().Replace(" ", "").TrimStart('#'),
                                ((string)g["word"]!).ToLowerInvariant().Replace(" ", ""));
                            Assert.Equal(["entity_group", "score", "word", "start", "end"], g.Select(kv => kv.Key));
                        }
                        else
                        {
                            Assert.Equal(w.GetProperty("index").GetInt32(), (int)g["index"]!);
                            Assert.Equal(["entity", "score", "index", "word", "start", "end"], g.Select(kv => kv.Key));
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void Offsets_point_into_the_original_text_and_pre_split_words_into_the_words_joined_by_spaces()
    {
        var body = TokClsBody;
        using var head = NerKind.CreateHead(Context(body, kind: "token-classification", weights: TokCls));
        var all = Json("""{"ignore_labels": []}""");
        var text = "John  Smith\tplays in NEW YORK!";
        foreach (var e in Predict(body, head, all, new JsonObject { ["text"] = text }.ToJsonString())[0]!.AsArray())
        {
            var word = (string)e!["word"]!;
            var slice = text[(int)e["start"]!..(int)e["end"]!];
            Assert.Equal(word.TrimStart('#'), slice.ToLowerInvariant());
        }
        var words = new[] { "Peter", "Blackburn", "visits", "BRUSSELS", "." };
        var joined = string.Join(' ', words);
        var entities = Predict(body, head, Json("""{"ignore_labels": [], "aggregation": "first"}"""),
            new JsonObject { ["tokens"] = new JsonArray(words.Select(w => (JsonNode)w).ToArray()) }.ToJsonString())[0]!.AsArray();
        // aggregation first: one entry per word (when no two adjacent words merge), each the word's span in the joined text
        var spans = entities.Select(e => (string)e!["word"]!).ToList();
        Assert.Equal(joined, string.Join(' ', spans).Replace("  ", " "));
        foreach (var e in entities) Assert.Equal((string)e!["word"]!, joined[(int)e["start"]!..(int)e["end"]!]);
    }

    [Fact]
    public void Labels_in_the_configuration_must_equal_the_imported_ones_and_the_import_has_no_extra_layers()
    {
        var body = TokClsBody;
        using var same = NerKind.CreateHead(Context(body, kind: "token-classification", labels: NerLabels, weights: TokCls));
        Assert.Equal(7, same.Labels.Count);
        var e = Assert.Throws<HeadConfigurationException>(() =>
            NerKind.CreateHead(Context(body, kind: "token-classification", labels: ["O", "B-PER", "I-PER"], weights: TokCls)));
        Assert.Equal("labels", e.Field);
        Assert.Contains("[O, B-PER, I-PER]", e.Message);
        Assert.Equal("options.layers", Assert.Throws<HeadConfigurationException>(() =>
            NerKind.CreateHead(Context(body, kind: "token-classification", weights: TokCls, options: """{"layers": [-1, -2]}"""))).Field);
        Assert.Equal("options.hidden_size", Assert.Throws<HeadConfigurationException>(() =>
            NerKind.CreateHead(Context(body, kind: "token-classification", weights: TokCls, options: """{"hidden_size": 8}"""))).Field);
    }

    [Fact]
    public void A_task_model_on_another_body_is_refused()
    {
        var e = Assert.Throws<HeadConfigurationException>(() => NerKind.CreateHead(
            Context(TinyBert, kind: "token-classification", labels: ["negative", "neutral", "positive"], weights: ReferenceOutputs.ModelFolder("tiny-bert-seqcls-other"))));
        Assert.Equal("weights", e.Field);
        Assert.Contains("fine-tuned on another body", e.Message);
    }
}
