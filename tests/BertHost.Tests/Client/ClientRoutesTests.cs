using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Client;

namespace BertHost.Tests.Client;

/// <summary>Every read and predict call of <see cref="BertHostClient"/> against a real host, each compared with the JSON the host sends.</summary>
public sealed class ClientRoutesTests(ClientHost host) : IClassFixture<ClientHost>
{
    private BertHostClient Client => host.Client;

    private static float[] Floats(JsonNode? array) => array!.AsArray().Select(v => v!.GetValue<float>()).ToArray();

    [Fact]
    public async Task Heads_are_listed_and_described_as_the_host_answers()
    {
        var heads = await Client.ListHeadsAsync();
        var raw = (await host.Host.GetAsync("/v1/heads")).Body["heads"]!.AsArray();
        Assert.Equal(raw.Select(h => (string)h!["name"]!), heads.Select(h => h.Name));
        for (var i = 0; i < raw.Count; i++)
        {
            Assert.Equal((string)raw[i]!["kind"]!, heads[i].Kind);
            Assert.Equal((string)raw[i]!["state"]!, heads[i].State);
            Assert.Equal(raw[i]!["labels"]!.AsArray().Select(l => (string)l!), heads[i].Labels);
            Assert.Equal((string?)raw[i]!["plugin"], heads[i].Plugin);
            Assert.Equal((string?)raw[i]!["plugin_sha256"], heads[i].PluginSha256);
        }
        Assert.Matches("^[0-9a-f]{64}$", heads.Single(h => h.Name == "emb").PluginSha256);
        var broken = heads.Single(h => h.Name == "broken");
        Assert.False(broken.IsReady);
        Assert.Equal("failed", broken.State);
        Assert.False(string.IsNullOrEmpty(broken.Error));
        Assert.True(heads.Single(h => h.Name == "cross").IsReady);

        var detail = await Client.GetHeadAsync("emb8");
        Assert.Equal(("emb8", "embedding"), (detail.Name, detail.Kind));
        Assert.Equal(8, detail.Details.GetProperty("dimensions").GetInt32());
        Assert.Equal("cls", detail.Details.GetProperty("options").GetProperty("pooling").GetString());
    }

    [Fact]
    public async Task Text_classification_results_carry_the_hosts_labels_and_scores()
    {
        TextInput[] inputs = [new("where is the city", "the city is by the river"), "the old man"];
        var results = await Client.ClassifyAsync("cross", inputs, new ClassificationParameters { TopK = 2 });
        var raw = await host.RawOutputsAsync("cross", new object[] { new { text = inputs[0].Text, text_pair = inputs[0].TextPair }, inputs[1].Text },
            new { top_k = 2 });
        Assert.Equal(2, results.Count);
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal((string)raw[i]!["label"]!, results[i].Label);
            Assert.Equal((double)raw[i]!["score"]!, results[i].Score);
            Assert.Equal(raw[i]!["scores"]!.AsObject().ToDictionary(p => p.Key, p => (double)p.Value!), results[i].Scores);
            Assert.Equal(raw[i]!["top"]!.AsArray().Select(t => ((string)t!["label"]!, (double)t["score"]!)), results[i].Top!.Select(t => (t.Label, t.Score)));
        }
        Assert.Equal(1.0, results[0].Scores.Values.Sum(), 5);
    }

    [Fact]
    public async Task Entities_answers_and_choices_carry_the_hosts_outputs()
    {
        const string text = "the old man went to paris with his dog";
        var groups = await Client.ExtractEntitiesAsync("ner", [text, TokenClassificationInput.FromWords(["the", "old", "man"])],
            new TokenClassificationParameters { Aggregation = "simple", IgnoreLabels = [] });
        var rawGroups = await host.RawOutputsAsync("ner", new object[] { text, new { tokens = new[] { "the", "old", "man" } } },
            new { aggregation = "simple", ignore_labels = Array.Empty<string>() });
        for (var i = 0; i < 2; i++)
        {
            Assert.NotEmpty(groups[i]);
            Assert.Equal(rawGroups[i]!.AsArray().Select(g => ((string)g!["entity_group"]!, (string)g["word"]!, (double)g["score"]!, (int)g["start"]!, (int)g["end"]!)),
                groups[i].Select(g => (g.Label, g.Word, g.Score, g.Start, g.End)));
        }
        Assert.Equal(text[groups[0][0].Start..groups[0][0].End], groups[0][0].Word);
        var tokens = await Client.ExtractEntitiesAsync("ner", [text]);
        Assert.All(tokens[0], t => Assert.NotNull(t.Index));

        var qa = new QuestionAnsweringInput("where did the man go", "the old man went to the city with his dog");
        var answer = Assert.Single(await Client.AnswerAsync("qa", [qa], new QuestionAnsweringParameters { MaxAnswerLen = 10 }));
        var rawAnswer = (await host.RawOutputsAsync("qa", new[] { new { question = qa.Question, context = qa.Context } }, new { max_answer_len = 10 }))[0]!;
        Assert.Equal(((string)rawAnswer["answer"]!, (double)rawAnswer["score"]!, (int)rawAnswer["start"]!, (int)rawAnswer["end"]!),
            (answer.Answer, answer.Score, answer.Start, answer.End));
        Assert.Equal(qa.Context[answer.Start..answer.End], answer.Answer);
        var top = Assert.Single(await Client.AnswerTopAsync("qa", [qa], topK: 3));
        Assert.Equal(3, top.Count);
        Assert.Equal(answer.Answer, top[0].Answer);
        Assert.True(top[0].Score >= top[1].Score && top[1].Score >= top[2].Score);
        Assert.Equal(answer, Assert.Single(Assert.Single(await Client.AnswerTopAsync("qa", [qa], topK: 1, new QuestionAnsweringParameters { MaxAnswerLen = 10 }))));

        var item = new MultipleChoiceInput("she opened the door", ["and went out", "and ate the door"], "then she");
        var choice = Assert.Single(await Client.ChooseAsync("choice", [item]));
        var rawChoice = (await host.RawOutputsAsync("choice", new[] { new { context = item.Context, choices = item.Choices, question = item.Question } }))[0]!;
        Assert.Equal((int)rawChoice["choice"]!, choice.Choice);
        Assert.Equal(item.Choices[choice.Choice], choice.Label);
        Assert.Equal(rawChoice["scores"]!.AsArray().Select(v => (double)v!), choice.Scores);
        Assert.Equal(rawChoice["probabilities"]!.AsArray().Select(v => (double)v!), choice.Probabilities);
    }

    [Fact]
    public async Task Embedding_heads_answer_vectors_and_token_counts()
    {
        string[] texts = ["a dog", "the old man went to the city"];
        var outputs = await Client.EmbedWithHeadAsync("emb", texts, new EmbeddingParameters { Dimensions = 6 });
        var raw = await host.RawOutputsAsync("emb", texts, new { dimensions = 6 });
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(Floats(raw[i]!["embedding"]), outputs[i].Embedding);
            Assert.Equal((int)raw[i]!["tokens"]!, outputs[i].Tokens);
            Assert.Equal(6, outputs[i].Embedding.Length);
        }
        Assert.Equal(4, outputs[0].Tokens);   // [CLS] a dog [SEP]
    }

    [Fact]
    public async Task A_third_party_head_answers_raw_json_readable_as_any_type()
    {
        object[] inputs = ["a dog", new { text = "the city" }, JsonDocument.Parse("""{"text": "his dog"}""").RootElement];
        var response = await Client.PredictAsync("echo", inputs);
        var raw = await host.RawOutputsAsync("echo", inputs);
        Assert.Equal(raw.Select(o => o!.ToJsonString()), response.Outputs.Select(o => JsonNode.Parse(o.GetRawText())!.ToJsonString()));
        var typed = await Client.PredictAsync<EchoOutput>("echo", inputs);
        Assert.Equal(raw.Select(o => (int)o!["tokens"]!), typed.Select(t => t.Tokens));
        Assert.All(typed, t => Assert.Equal(3, t.Cls.Length));
        Assert.Equal(typed.Select(t => t.Cls), response.As<EchoOutput>().Select(t => t.Cls));
    }

    private sealed record EchoOutput(int Tokens, float[] Cls);

    [Fact]
    public async Task Several_heads_answer_one_request_keyed_by_head()
    {
        var response = await Client.PredictManyAsync(["sentiment", "emb8"], ["a dog", "the city"]);
        Assert.Equal(2, response.Outputs.Count);
        Assert.Equal(["emb8", "sentiment"], response.Outputs[0].Keys.Order());
        // Two body passes need not agree to the last bit: on a busy machine MKL may run a GEMM on fewer threads and sum
        // in another order (a 1e-8 difference was seen once under load), so values are compared to 1e-6.
        var labels = response.For<ClassificationResult>("sentiment");
        var alone = await Client.ClassifyAsync("sentiment", ["a dog", "the city"]);
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(alone[i].Scores.Keys.Order(), labels[i].Scores.Keys.Order());
            foreach (var (label, score) in alone[i].Scores) Assert.Equal(score, labels[i].Scores[label], 1e-6);
        }
        var vectors = response.For<EmbeddingOutput>("emb8");
        var embedded = await Client.EmbedWithHeadAsync("emb8", ["a dog", "the city"]);
        for (var i = 0; i < 2; i++)
            Assert.All(embedded[i].Embedding.Zip(vectors[i].Embedding), p => Assert.Equal(p.First, p.Second, 1e-6));
        Assert.Throws<KeyNotFoundException>(() => response.For<EmbeddingOutput>("emb"));
    }

    [Fact]
    public async Task Body_health_readiness_metrics_and_the_openapi_document()
    {
        var body = await Client.GetBodyAsync();
        var raw = (await host.Host.GetAsync("/v1/body")).Body;
        Assert.Equal((string)raw["fingerprint"]!, body.Fingerprint);
        Assert.Equal(((int)raw["hidden_size"]!, (int)raw["num_hidden_layers"]!, (int)raw["max_sequence_length"]!),
            (body.HiddenSize, body.NumHiddenLayers, body.MaxSequenceLength));
        Assert.Equal(host.Host.Engine.Body.Fingerprint, body.Fingerprint);
        Assert.Equal("float32", body.Dtype);
        Assert.NotNull(body.FastPaths);
        Assert.Equal((long)raw["prepacked_weights_bytes"]!, body.AdditionalProperties!["prepacked_weights_bytes"].GetInt64());

        Assert.Equal("ok", (await Client.GetLivenessAsync()).Status);
        var ready = await Client.GetReadinessAsync();
        Assert.True(ready.IsReady);
        var broken = ready.Heads.Single(h => h.Name == "broken");
        Assert.Equal(("failed", false), (broken.State, broken.Required));

        await Client.ListHeadsAsync();
        var metrics = await Client.GetMetricsAsync();
        Assert.Contains("berthost_requests_total{route=\"/v1/heads\"", metrics);

        var document = await Client.GetOpenApiDocumentAsync();
        Assert.StartsWith("3.1", document.GetProperty("openapi").GetString());
        Assert.True(document.GetProperty("paths").TryGetProperty("/v1/heads/{name}/predict", out _));
    }

    [Fact]
    public async Task OpenAi_embeddings_in_base64_and_float_are_the_heads_vectors_with_usage_in_tokens()
    {
        string[] texts = ["the old man went to the city", "his dog"];
        var native = await Client.EmbedWithHeadAsync("emb", texts);
        var base64 = await Client.CreateEmbeddingsAsync(texts, new OpenAiEmbeddingOptions { Model = "emb" });
        var floats = await Client.CreateEmbeddingsAsync(texts, new OpenAiEmbeddingOptions { Model = "emb", Base64 = false, User = "ignored" });
        foreach (var response in new[] { base64, floats })
        {
            Assert.Equal("emb", response.Model);
            Assert.Equal([0, 1], response.Data.Select(d => d.Index));
            Assert.Equal(native.Select(n => n.Embedding), response.Data.Select(d => d.Embedding));
            Assert.Equal(native.Sum(n => n.Tokens), response.Usage.PromptTokens);
            Assert.Equal(response.Usage.PromptTokens, response.Usage.TotalTokens);
        }

        var cut = await Client.CreateEmbeddingsAsync(["a dog"], new OpenAiEmbeddingOptions { Model = "emb", Dimensions = 5 });
        var full = native[1].Embedding;
        var head = (await Client.EmbedWithHeadAsync("emb", ["a dog"]))[0].Embedding[..5];
        var norm = Math.Sqrt(head.Sum(v => (double)v * v));
        Assert.Equal(head.Select(v => v / norm), cut.Data[0].Embedding.Select(v => (double)v), new Tolerance(1e-6));
        Assert.NotEqual(full.Length, cut.Data[0].Embedding.Length);
    }

    [Fact]
    public async Task Tei_embed_rerank_and_tokenize_answer_as_the_host()
    {
        var vectors = await Client.EmbedAsync(["a dog", "the city"], new TeiEmbedOptions { Model = "emb8", Dimensions = 4, Normalize = true, Truncate = true, TruncationDirection = "Right" });
        var raw = (await host.Host.PostAsync("/embed", new { inputs = new[] { "a dog", "the city" }, model = "emb8", dimensions = 4 })).Body.AsArray();
        Assert.Equal(raw.Select(Floats), vectors);
        Assert.All(vectors, v => Assert.Equal(4, v.Length));

        string[] texts = ["Paris is in France.", "Deep learning is machine learning.", "dogs bark"];
        var ranks = await Client.RerankAsync("What is deep learning?", texts, new RerankOptions { ReturnText = true });
        var rawRanks = (await host.Host.PostAsync("/rerank", new { query = "What is deep learning?", texts, return_text = true })).Body.AsArray();
        Assert.Equal(rawRanks.Select(r => ((int)r!["index"]!, (float)r["score"]!, (string)r["text"]!)), ranks.Select(r => (r.Index, r.Score, r.Text!)));
        Assert.Equal([0, 1, 2], ranks.Select(r => r.Index).Order());
        Assert.All(ranks, r => Assert.Equal(texts[r.Index], r.Text));
        var logits = await Client.RerankAsync("What is deep learning?", texts, new RerankOptions { RawScores = true, Model = "cross" });
        Assert.Null(logits[0].Text);
        Assert.Equal(ranks.Select(r => r.Index), logits.Select(r => r.Index));

        var tokens = await Client.TokenizeAsync(["Héllo, wörld!"]);
        Assert.Equal(["[CLS]", "Héllo", ",", "wörld", "!", "[SEP]"], tokens[0].Select(t => t.Text));
        Assert.Equal((true, (int?)null, (int?)null), (tokens[0][0].Special, tokens[0][0].Start, tokens[0][0].Stop));
        Assert.Equal((7, 12), (tokens[0][3].Start!.Value, tokens[0][3].Stop!.Value));
        var rawTokens = (await host.Host.PostAsync("/tokenize", new { inputs = "Héllo, wörld!" })).Body[0]!.AsArray();
        Assert.Equal(rawTokens.Select(t => (int)t!["id"]!), tokens[0].Select(t => t.Id));
        var bare = await Client.TokenizeAsync(["Héllo, wörld!", "a dog"], addSpecialTokens: false);
        Assert.Equal(tokens[0].Skip(1).SkipLast(1).Select(t => t.Id), bare[0].Select(t => t.Id));
        Assert.Equal(2, bare[1].Count);
    }

    [Fact]
    public async Task KServe_metadata_readiness_and_inference_of_every_kind()
    {
        Assert.True(await Client.IsServerLiveAsync());
        Assert.True(await Client.IsServerReadyAsync());
        var server = await Client.GetServerMetadataAsync();
        Assert.Equal("berthost", server.Name);
        Assert.Empty(server.Extensions);

        var model = await Client.GetModelMetadataAsync("emb8");
        Assert.Equal(("emb8", "berthost_embedding"), (model.Name, model.Platform));
        Assert.Equal(("text", "BYTES"), (model.Inputs[0].Name, model.Inputs[0].Datatype));
        Assert.Equal([-1L, 8L], model.Outputs.Single(o => o.Name == "embedding").Shape);
        Assert.True(await Client.IsModelReadyAsync("emb8"));
        Assert.False(await Client.IsModelReadyAsync("broken"));

        var embedding = await Client.InferAsync("emb8", new InferenceRequest(InferenceInput.Bytes("text", "a dog", "the city")) { Id = "7" });
        Assert.Equal(("emb8", "7"), (embedding.ModelName, embedding.Id));
        var tensor = embedding.Output("embedding");
        Assert.Equal([2L, 8L], tensor.Shape);
        var native = await Client.EmbedWithHeadAsync("emb8", ["a dog", "the city"]);
        Assert.Equal(native[1].Embedding, tensor.Row(1));
        Assert.Equal(native.SelectMany(n => n.Embedding), tensor.AsSingles());
        Assert.Throws<InvalidOperationException>(() => tensor.AsStrings());

        var classified = await Client.InferAsync("cross", new InferenceRequest(InferenceInput.Bytes("text", "where is it"), InferenceInput.Bytes("text_pair", "by the river"))
        {
            Outputs = [new RequestedOutput("scores")],
        });
        var scores = Assert.Single(classified.Outputs);
        var typed = (await Client.ClassifyAsync("cross", [new TextInput("where is it", "by the river")]))[0];
        var labels = (await Client.GetHeadAsync("cross")).Labels;
        Assert.Equal(labels.Select(l => (float)typed.Scores[l]), scores.AsSingles());

        var choices = await Client.InferAsync("choice", new InferenceRequest(InferenceInput.Bytes("context", "she opened the door"),
            InferenceInput.Bytes("choices", [["and went out", "and ate the door"]])));
        var chosen = (await Client.ChooseAsync("choice", [new MultipleChoiceInput("she opened the door", ["and went out", "and ate the door"])]))[0];
        Assert.Equal([(long)chosen.Choice], choices.Output("choice").AsInt64s());
        Assert.Equal([chosen.Label], choices.Output("label").AsStrings());

        // A third-party kind answers each input's JSON as a BYTES string.
        var echo = await Client.InferAsync("echo", new InferenceRequest(InferenceInput.Bytes("text", "a dog")));
        var json = JsonNode.Parse(echo.Output("output").AsStrings()[0])!;
        Assert.Equal(4, (int)json["tokens"]!);
    }

    private sealed class Tolerance(double epsilon) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= epsilon;
        public int GetHashCode(double obj) => 0;
    }
}
