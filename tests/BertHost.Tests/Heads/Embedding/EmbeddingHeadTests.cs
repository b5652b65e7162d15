using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Tests.Plugins;
using BertHost.Tests.Support;

namespace BertHost.Tests.Heads.Embedding;

/// <summary>
/// The embedding head against the independent reference's hidden states of tiny-bert (tests/reference/bert_reference.py,
/// Fixtures/models/expected.json): mean, cls and max pooling, normalisation, cut dimensions, and its refusals.
/// </summary>
public sealed class EmbeddingHeadTests
{
    private static IHead Create(string? options = null, IReadOnlyList<string>? labels = null, string? weights = null) =>
        HeadTestSupport.Kind(HeadTestSupport.EmbeddingPlugin, "embedding")
            .CreateHead(HeadTestSupport.Context(HeadTestSupport.TinyBert, kind: "embedding", options: options, labels: labels, weights: weights));

    private static float[] Embed(IHead head, string text, string parameters = "{}")
    {
        var features = head.Encode(HeadTestSupport.Json(JsonSerializer.Serialize(text)), HeadTestSupport.Json(parameters));
        var (batch, logits) = HeadTestSupport.Run(HeadTestSupport.TinyBert, head, [features]);
        using (logits)
            return head.Decode(logits, batch)[0]["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
    }

    /// <summary>The reference's last hidden state of the "single" case, [tokens][hidden], and its text.</summary>
    private static (string Text, double[][] Hidden) Reference()
    {
        var c = ReferenceOutputs.Load().Case("single");
        var hidden = c.GetProperty("last_hidden_state")[0].EnumerateArray().Select(t => t.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
        return (c.GetProperty("text").GetString()!, hidden);
    }

    private static double[] Normalized(double[] v)
    {
        var norm = Math.Sqrt(v.Sum(x => x * x));
        return v.Select(x => x / norm).ToArray();
    }

    private static void AssertClose(IReadOnlyList<double> expected, IReadOnlyList<float> actual, double tolerance = 1e-4)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"[{i}]: expected {expected[i]}, got {actual[i]}");
    }

    [Fact]
    public void Mean_cls_and_max_pooling_match_the_reference_hidden_states()
    {
        var (text, hidden) = Reference();
        var width = hidden[0].Length;
        var mean = Enumerable.Range(0, width).Select(j => hidden.Average(t => t[j])).ToArray();
        var max = Enumerable.Range(0, width).Select(j => hidden.Max(t => t[j])).ToArray();

        using (var head = Create()) AssertClose(Normalized(mean), Embed(head, text));
        using (var head = Create("""{"normalize": false}""")) AssertClose(mean, Embed(head, text));
        using (var head = Create("""{"pooling": "cls", "normalize": false}""")) AssertClose(hidden[0], Embed(head, text));
        using (var head = Create("""{"pooling": "max"}""")) AssertClose(Normalized(max), Embed(head, text));
    }

    [Fact]
    public void Dimensions_cut_the_pooled_vector_then_normalise_it_again()
    {
        var (text, hidden) = Reference();
        var mean = Enumerable.Range(0, hidden[0].Length).Select(j => hidden.Average(t => t[j])).ToArray();
        using (var head = Create("""{"dimensions": 8}"""))
        {
            var v = Embed(head, text);
            AssertClose(Normalized(mean[..8]), v);
            Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 5);
            // A request may ask for fewer, never for more than the head serves.
            AssertClose(Normalized(mean[..3]), Embed(head, text, """{"dimensions": 3}"""));
            var e = Assert.Throws<HeadInputException>(() => head.Encode(HeadTestSupport.Json("\"x\""), HeadTestSupport.Json("""{"dimensions": 9}""")));
            Assert.Equal("parameters.dimensions", e.Field);
            Assert.Contains("at most 8", e.Message);
        }
        using (var head = Create("""{"dimensions": 8, "normalize": false}""")) AssertClose(mean[..8], Embed(head, text));
    }

    [Fact]
    public void Output_counts_the_tokens_the_body_read()
    {
        using var head = Create();
        var features = head.Encode(HeadTestSupport.Json("\"the old man went to the city with his dog\""), HeadTestSupport.NoParameters);
        var (batch, logits) = HeadTestSupport.Run(HeadTestSupport.TinyBert, head, [features]);
        using (logits) Assert.Equal(12, head.Decode(logits, batch)[0]["tokens"]!.GetValue<int>()); // [CLS] + 10 words + [SEP]
    }

    [Fact]
    public void Truncation_keeps_the_start_or_with_left_the_end_and_false_refuses()
    {
        using var head = Create("""{"max_length": 5}""");
        var text = HeadTestSupport.Json("\"the old man went to the city\"");
        var tokenizer = HeadTestSupport.TinyBert.Tokenizer;
        var all = tokenizer.Encode("the old man went to the city")[0].InputIds;   // [CLS] the old man went to the city [SEP]
        var right = head.Encode(text, HeadTestSupport.Json("""{"truncate": true}""")).Sequences[0];
        Assert.Equal([all[0], all[1], all[2], all[3], all[^1]], right.InputIds);
        var left = head.Encode(text, HeadTestSupport.Json("""{"truncate": true, "truncation_direction": "Left"}""")).Sequences[0];
        Assert.Equal([all[0], all[^4], all[^3], all[^2], all[^1]], left.InputIds);
        Assert.Equal(["[CLS]", "to", "the", "city", "[SEP]"], left.Tokens);
        var refused = Assert.Throws<HeadInputException>(() => head.Encode(text, HeadTestSupport.Json("""{"truncate": false}""")));
        Assert.Equal("text", refused.Field);
        Assert.Contains("accepts at most 5", refused.Message);
    }

    [Theory]
    [InlineData("""{"pooling": "sum"}""", "options.pooling", "pooling 'sum' is not one of mean, cls, max, pooler")]
    [InlineData("""{"dimensions": 0}""", "options.dimensions", "at least 1")]
    [InlineData("""{"dimensions": 100000}""", "options.dimensions", "at most the body's hidden size")]
    [InlineData("""{"normalise": true}""", "options.normalise", "unknown option")]
    public void Bad_options_name_the_option(string options, string field, string message)
    {
        var e = Assert.Throws<HeadConfigurationException>(() => Create(options));
        Assert.Equal(field, e.Field);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Labels_and_weights_are_refused_and_bad_inputs_name_the_field()
    {
        Assert.Equal("labels", Assert.Throws<HeadConfigurationException>(() => Create(labels: ["a"])).Field);
        Assert.Equal("weights", Assert.Throws<HeadConfigurationException>(() => Create(weights: "/tmp")).Field);
        using var head = Create();
        Assert.Equal("text", Assert.Throws<HeadInputException>(() => head.Encode(HeadTestSupport.Json("\"  \""), HeadTestSupport.NoParameters)).Field);
        Assert.Equal("text", Assert.Throws<HeadInputException>(() => head.Encode(HeadTestSupport.Json("3"), HeadTestSupport.NoParameters)).Field);
        Assert.Equal("text_pair", Assert.Throws<HeadInputException>(() => head.Encode(HeadTestSupport.Json("""{"text": "a", "text_pair": "b"}"""), HeadTestSupport.NoParameters)).Field);
        Assert.Equal("parameters.truncation_direction",
            Assert.Throws<HeadInputException>(() => head.Encode(HeadTestSupport.Json("\"a\""), HeadTestSupport.Json("""{"truncation_direction": "up"}"""))).Field);
    }
}
