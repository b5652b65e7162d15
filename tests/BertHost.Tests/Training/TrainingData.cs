using System.Text;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Tests.Support;
using static BertHost.Tests.Plugins.HeadTestSupport;
using BertHost.Core.Body;

namespace BertHost.Tests.Training;

/// <summary>A tiny sentiment set from tiny-bert's vocabulary: the label is given by one positive or negative word.</summary>
internal static class TrainingData
{
    private static readonly string[] Positive = ["happy", "good", "great", "love", "best"];
    private static readonly string[] Negative = ["no", "not", "never", "death", "war"];
    private static readonly string[] Filler = ["the", "dog", "cat", "sat", "mat", "house", "city", "day", "man", "book", "river", "song"];

    public static string WriteJsonl(int count, int seed, string? folder = null)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            var positive = i % 2 == 0;
            var words = Enumerable.Range(0, 1 + rng.Next(2)).Select(_ => Filler[rng.Next(Filler.Length)]).ToList();
            words.Insert(rng.Next(words.Count + 1), (positive ? Positive : Negative)[rng.Next(5)]);
            sb.Append($$"""{"text": "{{string.Join(' ', words)}}", "label": "{{(positive ? "positive" : "negative")}}"}""").Append('\n');
        }
        var path = Path.Combine(folder ?? TempFolder(), $"data-{seed}.jsonl");
        File.WriteAllText(path, sb.ToString());
        return path;
    }

    private static readonly string[] Animals = ["dog", "cat"];
    private static readonly string[] Places = ["house", "city", "river"];
    private static readonly string[] Neutral = ["the", "sat", "mat", "day", "man", "book", "song"];

    /// <summary>A second task on the same vocabulary: the label (animal or place) is given by one topic word.</summary>
    public static string WriteTopicJsonl(int count, int seed, string? folder = null)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            var animal = i % 2 == 0;
            var words = Enumerable.Range(0, 1 + rng.Next(2)).Select(_ => Neutral[rng.Next(Neutral.Length)]).ToList();
            var topic = animal ? Animals[rng.Next(Animals.Length)] : Places[rng.Next(Places.Length)];
            words.Insert(rng.Next(words.Count + 1), topic);
            sb.Append($$"""{"text": "{{string.Join(' ', words)}}", "label": "{{(animal ? "animal" : "place")}}"}""").Append('\n');
        }
        var path = Path.Combine(folder ?? TempFolder(), $"topic-{seed}.jsonl");
        File.WriteAllText(path, sb.ToString());
        return path;
    }

    public static IHead TopicHead(BertBody body, string? weights = null) =>
        TextClassification.CreateHead(Context(body, name: "topic", labels: ["animal", "place"], weights: weights,
            options: """{"pooling": "mean", "dropout": 0, "hidden_layers": [32]}"""));

    public static BertBody LoadBody() => BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { Device = "cpu" });

    public static IHead Head(BertBody body, string pooling = "mean", string? weights = null) =>
        TextClassification.CreateHead(Context(body, name: "sentiment", labels: ["negative", "positive"], weights: weights, options: $$"""{"pooling": "{{pooling}}", "dropout": 0, "hidden_layers": [32]}"""));

    public static List<HeadFeatures> Examples(IHead head, string path) =>
        head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList();
}
