using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Core.Training;
using BertHost.Tests.Heads.MultipleChoice;
using BertHost.Tests.Training;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Heads.Pooling;

/// <summary>
/// <c>pooling: attention</c> (a learned scoring vector w, masked softmax over the tokens, weighted sum of their states)
/// in the text-classification and multiple-choice heads, checked against the formula computed here in plain double
/// loops, and through a save/load round trip.
/// </summary>
public sealed class AttentionPoolingTests
{
    private const string WeightName = "attention_pooling.score.weight";

    /// <summary>Σ_t softmax_t(w·h_t over real tokens) h_t, in doubles: the independent reference.</summary>
    private static double[][] Reference(float[] hidden, long[] mask, int b, int t, int h, double[] w)
    {
        var result = new double[b][];
        for (var i = 0; i < b; i++)
        {
            var scores = new double[t];
            var max = double.NegativeInfinity;
            for (var j = 0; j < t; j++)
            {
                if (mask[i * t + j] == 0) continue;
                for (var k = 0; k < h; k++) scores[j] += w[k] * hidden[(i * t + j) * h + k];
                max = Math.Max(max, scores[j]);
            }
            var weights = new double[t];
            var sum = 0.0;
            for (var j = 0; j < t; j++) if (mask[i * t + j] != 0) sum += weights[j] = Math.Exp(scores[j] - max);
            result[i] = new double[h];
            for (var j = 0; j < t; j++)
                for (var k = 0; k < h; k++) result[i][k] += weights[j] / sum * hidden[(i * t + j) * h + k];
        }
        return result;
    }

    private static double[] Values(Tensor x) => x.detach().to(ScalarType.Float64).contiguous().data<double>().ToArray();

    private static void SetScoringVector(IHead head, double[] w)
    {
        using var noGrad = no_grad();
        var p = head.Module.named_parameters().Single(p => p.name == WeightName).parameter;
        using var values = tensor(w.Select(x => (float)x).ToArray(), [1, w.Length]);
        p.copy_(values);
    }

    [Fact]
    public void The_module_matches_the_formula_ignores_padding_and_starts_as_mean_pooling()
    {
        const int b = 3, t = 6, h = 5;
        var rng = new Random(3);
        var hidden = Enumerable.Range(0, b * t * h).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        long[] mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0];
        using var states = tensor(hidden, [b, t, h]);
        using var attention = tensor(mask, [b, t], ScalarType.Int64);
        using var pooling = new AttentionPooling(h);

        // Fresh: w = 0, every real token weighs the same: exactly mean pooling.
        using (var mean = BertHost.Abstractions.Pooling.Pool(states, attention, PoolingMode.Mean))
        using (var fresh = pooling.call(states, attention))
            Assert.Equal(Values(mean), Values(fresh), (x, y) => Math.Abs(x - y) < 1e-6);

        var w = new[] { 0.9, -1.3, 0.4, 2.0, -0.7 };
        using (var noGrad = no_grad())
        {
            var p = pooling.named_parameters().Single().parameter;
            using var values = tensor(w.Select(x => (float)x).ToArray(), [1, h]);
            p.copy_(values);
        }
        using var pooled = pooling.call(states, attention);
        var expected = Reference(hidden, mask, b, t, h, w);
        var actual = Values(pooled);
        for (var i = 0; i < b; i++)
            for (var k = 0; k < h; k++) Assert.Equal(expected[i][k], actual[i * h + k], 5);

        // Padded positions get no weight: changing their states changes nothing.
        var changed = (float[])hidden.Clone();
        for (var j = 3; j < t; j++) for (var k = 0; k < h; k++) changed[(1 * t + j) * h + k] = 100f;
        using var changedStates = tensor(changed, [b, t, h]);
        using var again = pooling.call(changedStates, attention);
        Assert.Equal(actual, Values(again), (x, y) => Math.Abs(x - y) < 1e-6);
    }

    [Fact]
    public void The_classification_head_pools_with_its_scoring_vector_and_round_trips_through_a_head_folder()
    {
        var body = TinyBert;
        using var head = TextClassification.CreateHead(Context(body, labels: ["negative", "positive"], options: """{"pooling": "attention", "dropout": 0}"""));
        Assert.Equal("attention", head.Describe()["options"]!["pooling"]!.GetValue<string>());
        Assert.False(head.Requirements.PooledOutput);
        var w = Enumerable.Range(0, body.Config.HiddenSize).Select(i => Math.Sin(i * 0.7) * 0.5).ToArray();
        SetScoringVector(head, w);

        string[] texts = ["the dog sat on the mat", "good", "the man went to the city with his dog"];
        var features = texts.Select(x => head.Encode(Json($"\"{x}\""), NoParameters)).ToList();
        var padded = BertHost.Core.Text.PaddedBatch.Create(features.SelectMany(f => f.Sequences).ToList(), body.Tokenizer.PadTokenId);
        using var output = body.Forward(padded);
        int n = padded.BatchSize, t = padded.SequenceLength, hs = body.Config.HiddenSize;
        var pooled = Reference(Values(output.LastHiddenState).Select(x => (float)x).ToArray(), padded.AttentionMask, n, t, hs, w);
        var parameters = head.Module.named_parameters().ToDictionary(p => p.name, p => Values(p.parameter));
        var (weight, bias) = (parameters["classifier.weight"], parameters["classifier.bias"]);
        var (_, logits) = Run(body, head, features);
        var actual = Values(logits);
        for (var i = 0; i < n; i++)
            for (var c = 0; c < 2; c++)
                Assert.Equal(bias[c] + Enumerable.Range(0, hs).Sum(k => weight[c * hs + k] * pooled[i][k]), actual[i * 2 + c], 4);

        // Saved and loaded: the scoring vector comes back with the head, and the head answers the same.
        var folder = TempFolder();
        head.Save(folder, new HeadSaveInfo(body.Fingerprint));
        using var loaded = TextClassification.CreateHead(Context(body, weights: folder));
        Assert.Equal("attention", loaded.Describe()["options"]!["pooling"]!.GetValue<string>());
        Assert.Equal(w.Select(x => (double)(float)x), Values(loaded.Module.named_parameters().Single(p => p.name == WeightName).parameter));
        var (_, again) = Run(body, loaded, features);
        Assert.Equal(actual, Values(again));

        // The scoring vector is part of what the weights mean: the folder is refused under another pooling.
        var e = Assert.Throws<HeadConfigurationException>(() => TextClassification.CreateHead(Context(body, weights: folder, options: """{"pooling": "mean"}""")));
        Assert.Contains("pooling", e.Message);
    }

    [Fact]
    public void Training_moves_the_scoring_vector_and_learns_the_task()
    {
        using var body = TrainingData.LoadBody();
        using var head = TrainingData.Head(body, pooling: "attention");
        var train = TrainingData.Examples(head, TrainingData.WriteJsonl(48, seed: 1));
        var trainer = new Trainer(body, head, new TrainingOptions { Epochs = 20, BatchSize = 8, LearningRate = 1e-2, WeightDecay = 0, Seed = 7 });
        trainer.Train(train, train);
        var w = Values(head.Module.named_parameters().Single(p => p.name == WeightName).parameter);
        Assert.True(w.Any(x => Math.Abs(x) > 1e-3), "the scoring vector stayed at zero");
        Assert.True(trainer.Evaluate(train)["accuracy"] >= 0.85);
    }

    [Fact]
    public void The_multiple_choice_head_pools_with_attention_and_round_trips()
    {
        using var head = McSupport.Head(options: """{"pooling": "attention", "dropout": 0}""");
        Assert.Contains(head.Module.named_parameters(), p => p.name == WeightName);
        var w = Enumerable.Range(0, TinyBert.Config.HiddenSize).Select(i => Math.Cos(i * 0.3) * 0.4).ToArray();
        SetScoringVector(head, w);
        var item = McSupport.Encode(head, """{"context": "the man went to the city", "choices": ["with his dog", "on the mat", "a good book"]}""");

        var padded = BertHost.Core.Text.PaddedBatch.Create(item.Sequences.ToList(), TinyBert.Tokenizer.PadTokenId);
        using var output = TinyBert.Forward(padded);
        int n = padded.BatchSize, t = padded.SequenceLength, hs = TinyBert.Config.HiddenSize;
        var pooled = Reference(Values(output.LastHiddenState).Select(x => (float)x).ToArray(), padded.AttentionMask, n, t, hs, w);
        var parameters = head.Module.named_parameters().ToDictionary(p => p.name, p => Values(p.parameter));
        var (_, scores) = Run(TinyBert, head, [item]);
        var actual = Values(scores);
        for (var i = 0; i < n; i++)
            Assert.Equal(parameters["classifier.bias"][0] + Enumerable.Range(0, hs).Sum(k => parameters["classifier.weight"][k] * pooled[i][k]), actual[i], 4);

        var folder = TempFolder();
        head.Save(folder, new HeadSaveInfo(TinyBert.Fingerprint));
        using var loaded = McSupport.Head(weights: folder);
        Assert.Equal("attention", loaded.Describe()["options"]!["pooling"]!.GetValue<string>());
        var (_, again) = Run(TinyBert, loaded, [item]);
        Assert.Equal(actual, Values(again));
    }

    [Theory]
    [InlineData("text-classification", "pooling 'attentive' is not one of pooler, cls, mean, max, attention")]
    [InlineData("multiple-choice", "pooling 'attentive' is not one of pooler, cls, mean, attention")]
    public void An_unknown_pooling_lists_attention(string kind, string message)
    {
        const string options = """{"pooling": "attentive"}""";
        var e = Assert.Throws<HeadConfigurationException>(() => kind == "multiple-choice"
            ? McSupport.Head(options: options)
            : TextClassification.CreateHead(Context(TinyBert, labels: ["a", "b"], options: options)));
        Assert.Equal("options.pooling", e.Field);
        Assert.Contains(message, e.Message);
    }
}
