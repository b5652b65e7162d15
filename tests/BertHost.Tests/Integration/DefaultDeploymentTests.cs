using System.Text.Json.Nodes;
using BertHost.Tests.Support;

namespace BertHost.Tests.Integration;

/// <summary>
/// The shipped default deployment, config/default.yaml, as committed: all-MiniLM-L6-v2 (imported by the build) with the
/// trained sentiment and NER heads under config/heads/ (frozen-body and LoRA) and the embedding head. Checks that the committed heads were
/// trained on exactly this body (their recorded fingerprint is the served body's, so they are not stale), and that
/// the deployment gives right answers on sentences whose answers are not in doubt.
/// </summary>
public sealed class DefaultDeploymentTests
{
    private static string ConfigPath => Path.Combine(TestPaths.RepoRoot, "config", "default.yaml");

    [DefaultDeploymentFact]
    public async Task The_committed_heads_load_on_the_imported_body_and_give_right_answers()
    {
        await using var host = await TestHost.StartFromFileAsync(ConfigPath);

        // Not stale: every head ready, and each trained head's head.json names the served body's fingerprint.
        var (status, heads) = await host.GetAsync("/v1/heads");
        Assert.Equal(200, status);
        var states = heads["heads"]!.AsArray().ToDictionary(h => h!["name"]!.GetValue<string>(), h => h!["state"]!.GetValue<string>());
        Assert.Equal(new Dictionary<string, string> { ["sentiment"] = "ready", ["sentiment-lora"] = "ready", ["ner"] = "ready", ["ner-lora"] = "ready", ["embeddings"] = "ready" }, states);
        var (_, body) = await host.GetAsync("/v1/body");
        var fingerprint = body["fingerprint"]!.GetValue<string>();
        foreach (var head in new[] { "sentiment", "sentiment-lora", "ner", "ner-lora" })
        {
            var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "config", "heads", head, "head.json")))!;
            Assert.Equal(fingerprint, manifest["body_fingerprint"]!.GetValue<string>());
        }

        // Sentiment, from the frozen-body head and from the LoRA head on the same body: clearly positive and negative reviews.
        foreach (var head in new[] { "sentiment", "sentiment-lora" })
        {
            var (s1, sentiment) = await host.PostAsync($"/v1/heads/{head}/predict", new
            {
                inputs = new[]
                {
                    "a gripping, funny and deeply moving film",
                    "one of the best movies of the year , a delight from start to finish",
                    "the worst movie i have ever seen , dull and painfully boring",
                    "a tedious , lifeless mess",
                },
            });
            Assert.Equal(200, s1);
            var labels = sentiment["outputs"]!.AsArray().Select(o => o!["label"]!.GetValue<string>()).ToArray();
            Assert.Equal(["positive", "positive", "negative", "negative"], labels);
            Assert.All(sentiment["outputs"]!.AsArray(), o => Assert.True(o!["score"]!.GetValue<double>() > 0.8, head + ": " + o.ToJsonString()));
        }

        // NER, from the frozen-body head and from the LoRA head: people, places and an organisation.
        foreach (var head in new[] { "ner", "ner-lora" })
        {
            var (s2, ner) = await host.PostAsync($"/v1/heads/{head}/predict", new
            {
                inputs = new[] { "Angela Merkel visited Paris" },
                parameters = new { aggregation = "simple" },
            });
            Assert.Equal(200, s2);
            var entities = ner["outputs"]![0]!.AsArray()
                .Select(e => (Group: e!["entity_group"]!.GetValue<string>(), Word: e["word"]!.GetValue<string>())).ToList();
            Assert.True(entities.SequenceEqual([("PER", "Angela Merkel"), ("LOC", "Paris")]), head + ": " + ner.ToJsonString());
        }

        // Embeddings: unit length, and a paraphrase scores higher than an unrelated sentence.
        var (s3, embedded) = await host.PostAsync("/v1/heads/embeddings/predict", new
        {
            inputs = new[] { "a man is playing a guitar", "someone plays the guitar", "the stock market fell sharply today" },
        });
        Assert.Equal(200, s3);
        var vectors = embedded["outputs"]!.AsArray().Select(o => o!["embedding"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray()).ToArray();
        Assert.All(vectors, v => Assert.Equal(384, v.Length));
        Assert.All(vectors, v => Assert.Equal(1.0, Math.Sqrt(v.Sum(x => x * x)), 4));
        static double Dot(double[] a, double[] b) => a.Zip(b, (x, y) => x * y).Sum();
        var similar = Dot(vectors[0], vectors[1]);
        var unrelated = Dot(vectors[0], vectors[2]);
        Assert.True(similar > unrelated + 0.3, $"cosine of the paraphrase {similar}, of the unrelated sentence {unrelated}");
    }
}
