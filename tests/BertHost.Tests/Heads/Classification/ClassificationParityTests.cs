using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Tests.Support;
using static BertHost.Tests.Plugins.HeadTestSupport;

namespace BertHost.Tests.Heads.Classification;

/// <summary>An imported Hugging Face BertForSequenceClassification against the Python reference (make_classification_fixtures.py).</summary>
public class ClassificationParityTests
{
    private static readonly string SeqCls = ReferenceOutputs.ModelFolder("tiny-bert-seqcls");
    private static readonly string Other = ReferenceOutputs.ModelFolder("tiny-bert-seqcls-other");

    private static JsonElement Expected()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("models", "tiny-bert-seqcls.expected.json")));
        return doc.RootElement.Clone();
    }

    [Fact]
    public void An_imported_BertForSequenceClassification_matches_the_reference_probabilities()
    {
        var body = TinyBert;
        using var head = TextClassification.CreateHead(Context(body, weights: SeqCls));
        Assert.Equal(["negative", "neutral", "positive"], head.Labels);
        Assert.Equal(body.Fingerprint, head.TrainedOnFingerprint);
        Assert.Equal("huggingface", (string)head.Describe()["weights"]!);

        var expected = Expected();
        var cases = expected.GetProperty("cases").EnumerateArray().ToList();
        var features = cases.Select(c =>
        {
            var input = new JsonObject { ["text"] = c.GetProperty("text").GetString() };
            if (c.TryGetProperty("text_pair", out var pair)) input["text_pair"] = pair.GetString();
            return head.Encode(Json(input.ToJsonString()), NoParameters);
        }).ToList();
        for (var i = 0; i < cases.Count; i++)
        {
            Assert.Equal(cases[i].GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()), features[i].Sequences[0].InputIds);
            Assert.Equal(cases[i].GetProperty("token_type_ids").EnumerateArray().Select(e => e.GetInt32()), features[i].Sequences[0].TokenTypeIds);
        }

        // One padded batch of every case: padding must not change any row's result.
        var (batch, logits) = Run(body, head, features);
        using (logits)
        {
            var results = head.Decode(logits, batch);
            for (var i = 0; i < cases.Count; i++)
            {
                var want = cases[i].GetProperty("probabilities").EnumerateArray().Select(e => e.GetDouble()).ToArray();
                var scores = results[i]["scores"]!.AsObject();
                for (var j = 0; j < head.Labels.Count; j++)
                    Assert.True(Math.Abs(want[j] - (double)scores[head.Labels[j]]!) < 1e-4, $"case {i} label {head.Labels[j]}: {(double)scores[head.Labels[j]]!} vs {want[j]}");
                Assert.Equal(cases[i].GetProperty("label").GetString(), (string)results[i]["label"]!);
                Assert.Equal(want.Max(), (double)results[i]["score"]!, 4);
            }
        }
    }

    [Fact]
    public void A_task_model_fine_tuned_on_another_body_is_refused_with_both_fingerprints()
    {
        var body = TinyBert;
        var e = Assert.Throws<HeadConfigurationException>(() => TextClassification.CreateHead(Context(body, weights: Other)));
        Assert.Equal("weights", e.Field);
        Assert.Contains($"{Other} was fine-tuned on another body (fingerprint sha256:", e.Message);
        Assert.Contains($"the served body is {body.Fingerprint}", e.Message);
        Assert.Contains("serve it with that folder as body.checkpoint", e.Message);
        Assert.Contains(new Core.Checkpoints.CheckpointStore().BodyFingerprint(Other), e.Message);
    }

    [Fact]
    public void Labels_in_the_configuration_must_equal_the_imported_ones()
    {
        var body = TinyBert;
        using var same = TextClassification.CreateHead(Context(body, labels: ["negative", "neutral", "positive"], weights: SeqCls));
        Assert.Equal(3, same.Labels.Count);

        var e = Assert.Throws<HeadConfigurationException>(() =>
            TextClassification.CreateHead(Context(body, labels: ["neg", "neu", "pos"], weights: SeqCls)));
        Assert.Equal("labels", e.Field);
        Assert.Contains("[neg, neu, pos]", e.Message);
        Assert.Contains("[negative, neutral, positive]", e.Message);
    }

    [Fact]
    public void An_import_must_use_the_pooler_and_no_hidden_layers()
    {
        var body = TinyBert;
        Assert.Equal("options.pooling", Assert.Throws<HeadConfigurationException>(() =>
            TextClassification.CreateHead(Context(body, weights: SeqCls, options: """{"pooling": "cls"}"""))).Field);
        Assert.Equal("options.hidden_layers", Assert.Throws<HeadConfigurationException>(() =>
            TextClassification.CreateHead(Context(body, weights: SeqCls, options: """{"hidden_layers": [8]}"""))).Field);
        Assert.Equal("options.problem_type", Assert.Throws<HeadConfigurationException>(() =>
            TextClassification.CreateHead(Context(body, weights: SeqCls, options: """{"problem_type": "multi_label"}"""))).Field);
    }
}
