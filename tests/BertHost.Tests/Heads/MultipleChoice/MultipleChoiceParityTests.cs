using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Tests.Support;
using static BertHost.Tests.Heads.MultipleChoice.McSupport;
using static BertHost.Tests.Plugins.HeadTestSupport;

namespace BertHost.Tests.Heads.MultipleChoice;

/// <summary>An imported Hugging Face BertForMultipleChoice against the Python reference (make_multiple_choice_fixtures.py).</summary>
public class MultipleChoiceParityTests
{
    private static List<JsonElement> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("models", "tiny-bert-mc.expected.json")));
        return doc.RootElement.Clone().GetProperty("cases").EnumerateArray().ToList();
    }

    private static string Input(JsonElement c)
    {
        var o = new JsonObject
        {
            ["context"] = c.GetProperty("context").GetString(),
            ["choices"] = new JsonArray(c.GetProperty("choices").EnumerateArray().Select(e => (JsonNode)e.GetString()!).ToArray()),
        };
        if (c.TryGetProperty("question", out var q)) o["question"] = q.GetString();
        return o.ToJsonString();
    }

    private static void AssertMatches(JsonElement c, JsonNode result, string what)
    {
        var want = c.GetProperty("probabilities").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var wantLogits = c.GetProperty("logits").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var probabilities = result["probabilities"]!.AsArray().Select(p => (double)p!).ToArray();
        var scores = result["scores"]!.AsArray().Select(p => (double)p!).ToArray();
        Assert.Equal(want.Length, probabilities.Length);
        Assert.Equal(want.Length, scores.Length);
        for (var j = 0; j < want.Length; j++)
        {
            Assert.True(Math.Abs(want[j] - probabilities[j]) < 1e-4, $"{what} choice {j}: probability {probabilities[j]} vs {want[j]}");
            Assert.True(Math.Abs(wantLogits[j] - scores[j]) < 1e-4, $"{what} choice {j}: logit {scores[j]} vs {wantLogits[j]}");
        }
        Assert.Equal(c.GetProperty("choice").GetInt32(), (int)result["choice"]!);
        Assert.Equal(c.GetProperty("label").GetString(), (string)result["label"]!);
    }

    [Fact]
    public void An_imported_BertForMultipleChoice_gives_the_reference_ids_and_probabilities_item_by_item()
    {
        using var head = Head(weights: HfFolder);
        Assert.Equal(TinyBert.Fingerprint, head.TrainedOnFingerprint);
        Assert.Equal("huggingface", (string)head.Describe()["weights"]!);
        Assert.Empty(head.Labels);
        Assert.True(head.Requirements.PooledOutput);

        foreach (var c in Cases())
        {
            var features = Encode(head, Input(c));
            var ids = c.GetProperty("input_ids").EnumerateArray().ToList();
            var types = c.GetProperty("token_type_ids").EnumerateArray().ToList();
            Assert.Equal(ids.Count, features.Sequences.Count);
            for (var j = 0; j < ids.Count; j++)
            {
                Assert.Equal(ids[j].EnumerateArray().Select(e => e.GetInt32()), features.Sequences[j].InputIds);
                Assert.Equal(types[j].EnumerateArray().Select(e => e.GetInt32()), features.Sequences[j].TokenTypeIds);
            }
            var (batch, logits) = Run(TinyBert, head, [features]);
            using (logits)
            {
                Assert.Equal([(long)ids.Count], logits.shape);
                AssertMatches(c, head.Decode(logits, batch)[0], c.GetProperty("context").GetString()!);
            }
        }
    }

    [Fact]
    public void Items_with_different_choice_counts_in_one_batch_match_the_reference()
    {
        using var head = Head(weights: HfFolder);
        var cases = Cases();
        Assert.True(cases.Select(c => c.GetProperty("choices").GetArrayLength()).Distinct().Count() > 1);
        // every case, then again in reverse order: rows of different items and padding must not mix
        var order = cases.Concat(Enumerable.Reverse(cases)).ToList();
        var (batch, logits) = Run(TinyBert, head, order.Select(c => Encode(head, Input(c))));
        using (logits)
        {
            Assert.Equal(order.Sum(c => c.GetProperty("choices").GetArrayLength()), batch.RowCount);
            Assert.Equal([(long)batch.RowCount], logits.shape);
            var results = head.Decode(logits, batch);
            Assert.Equal(order.Count, results.Count);
            for (var i = 0; i < order.Count; i++) AssertMatches(order[i], results[i], $"batch item {i}");
        }
    }

    [Fact]
    public void A_task_model_fine_tuned_on_another_body_is_refused()
    {
        var other = ReferenceOutputs.ModelFolder("tiny-bert-seqcls-other");
        var e = Assert.Throws<HeadConfigurationException>(() => Head(weights: other));
        Assert.Equal("weights", e.Field);
        Assert.Contains("was fine-tuned on another body", e.Message);
        Assert.Contains($"the served body is {TinyBert.Fingerprint}", e.Message);
    }

    [Fact]
    public void An_import_must_pool_with_the_pooler()
    {
        var e = Assert.Throws<HeadConfigurationException>(() => Head(weights: HfFolder, options: """{"pooling": "cls"}"""));
        Assert.Equal("options.pooling", e.Field);
        Assert.Contains("BertForMultipleChoice", e.Message);
    }

    [Fact]
    public void A_BertForSequenceClassification_with_three_labels_does_not_load_as_a_multiple_choice_head()
    {
        var e = Assert.Throws<HeadConfigurationException>(() => Head(weights: ReferenceOutputs.ModelFolder("tiny-bert-seqcls")));
        Assert.Equal("weights", e.Field);
        Assert.Contains("classifier.weight is [3,32], the head expects [1,32]", e.Message);
    }
}
