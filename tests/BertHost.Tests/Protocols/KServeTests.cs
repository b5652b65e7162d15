using System.Text.Json.Nodes;

namespace BertHost.Tests.Protocols;

/// <summary>The Open Inference Protocol (KServe v2) routes with the spec's JSON, against the heads' own answers.</summary>
public sealed class KServeTests(ProtocolHost host) : IClassFixture<ProtocolHost>
{
    private static object Bytes(string name, params string[] data) => new { name, shape = new[] { data.Length }, datatype = "BYTES", data };

    private async Task<JsonNode> InferAsync(string model, object request)
    {
        var (status, body) = await host.PostAsync($"/v2/models/{model}/infer", request);
        Assert.True(status == 200, $"{model}: {status} {body.ToJsonString()}");
        return body;
    }

    private static JsonNode Output(JsonNode response, string name) =>
        response["outputs"]!.AsArray().Single(o => o!["name"]!.GetValue<string>() == name)!;

    private async Task<JsonArray> NativeAsync(string head, object inputs)
    {
        var (status, body) = await host.PostAsync($"/v1/heads/{head}/predict", new { inputs });
        Assert.Equal(200, status);
        return body["outputs"]!.AsArray();
    }

    [Fact]
    public async Task Health_server_and_model_metadata()
    {
        Assert.Equal((200, true), await Status("/v2/health/live", "live"));
        Assert.Equal((200, true), await Status("/v2/health/ready", "ready"));   // 'broken' failed but is not required
        var (status, server) = await host.GetAsync("/v2");
        Assert.Equal(200, status);
        Assert.Equal("berthost", server["name"]!.GetValue<string>());
        Assert.NotNull(server["extensions"]!.AsArray());

        var (_, model) = await host.GetAsync("/v2/models/sentiment");
        Assert.Equal("sentiment", model["name"]!.GetValue<string>());
        Assert.Equal("""[{"name":"text","datatype":"BYTES","shape":[-1]},{"name":"text_pair","datatype":"BYTES","shape":[-1]}]""", model["inputs"]!.ToJsonString());
        Assert.Equal("""[{"name":"label","datatype":"BYTES","shape":[-1]},{"name":"scores","datatype":"FP32","shape":[-1,2]}]""", model["outputs"]!.ToJsonString());
        var (_, emb) = await host.GetAsync("/v2/models/emb8");
        Assert.Equal("""[{"name":"embedding","datatype":"FP32","shape":[-1,8]}]""", emb["outputs"]!.ToJsonString());

        Assert.Equal((200, true), await Status("/v2/models/qa/ready", "ready"));
        Assert.Equal((503, false), await Status("/v2/models/broken/ready", "ready"));
        var (missing, error) = await host.GetAsync("/v2/models/nope");
        Assert.Equal(404, missing);
        Assert.Equal(["error"], error.AsObject().Select(p => p.Key));
        Assert.Contains("no model named 'nope'", error["error"]!.GetValue<string>());
    }

    private async Task<(int, bool)> Status(string path, string field)
    {
        var (status, body) = await host.GetAsync(path);
        return (status, body[field]!.GetValue<bool>());
    }

    [Fact]
    public async Task Classification_gives_labels_and_scores_in_label_order()
    {
        var response = await InferAsync("cross", new
        {
            id = "42",
            inputs = new[] { Bytes("text", "where did the man go", "is it good"), Bytes("text_pair", "he went to the city", "yes") },
        });
        Assert.Equal("42", response["id"]!.GetValue<string>());
        Assert.Equal("cross", response["model_name"]!.GetValue<string>());
        var native = await NativeAsync("cross", new[] { new { text = "where did the man go", text_pair = "he went to the city" }, new { text = "is it good", text_pair = "yes" } });
        var labels = Output(response, "label");
        Assert.Equal("BYTES", labels["datatype"]!.GetValue<string>());
        Assert.Equal(native.Select(o => o!["label"]!.GetValue<string>()), labels["data"]!.AsArray().Select(v => v!.GetValue<string>()));
        var scores = Output(response, "scores");
        Assert.Equal("[2,3]", scores["shape"]!.ToJsonString());
        var expected = native.SelectMany(o => o!["scores"]!.AsObject().Select(p => (float)p.Value!.GetValue<double>())).ToArray();
        Assert.Equal(expected, scores["data"]!.AsArray().Select(v => v!.GetValue<float>()));

        // outputs picks; nested data ([[..], [..]] of shape [2, 1]) is read row-major.
        var onlyLabel = await InferAsync("cross", new
        {
            inputs = new[] { new { name = "text", shape = new[] { 2, 1 }, datatype = "BYTES", data = (object)new[] { new[] { "where did the man go" }, new[] { "is it good" } } },
                             new { name = "text_pair", shape = new[] { 2, 1 }, datatype = "BYTES", data = (object)new[] { "he went to the city", "yes" } } },
            outputs = new[] { new { name = "label" } },
        });
        Assert.Equal(labels.ToJsonString(), Assert.Single(onlyLabel["outputs"]!.AsArray())!.ToJsonString());
    }

    [Fact]
    public async Task Embedding_qa_choice_and_ner_outputs_are_typed_per_kind()
    {
        var emb = Output(await InferAsync("emb8", new { inputs = new[] { Bytes("text", "a dog", "the city") } }), "embedding");
        Assert.Equal("FP32", emb["datatype"]!.GetValue<string>());
        Assert.Equal("[2,8]", emb["shape"]!.ToJsonString());
        var native = await NativeAsync("emb8", new[] { "a dog", "the city" });
        Assert.Equal(native.SelectMany(o => o!["embedding"]!.AsArray().Select(v => v!.GetValue<float>())), emb["data"]!.AsArray().Select(v => v!.GetValue<float>()));

        var qa = await InferAsync("qa", new { inputs = new[] { Bytes("question", "where did the man go"), Bytes("context", "the old man went to the city with his dog") } });
        var qaNative = (await NativeAsync("qa", new[] { new { question = "where did the man go", context = "the old man went to the city with his dog" } }))[0]!;
        Assert.Equal(qaNative["answer"]!.GetValue<string>(), Output(qa, "answer")["data"]![0]!.GetValue<string>());
        Assert.Equal(qaNative["start"]!.GetValue<long>(), Output(qa, "start")["data"]![0]!.GetValue<long>());
        Assert.Equal("INT64", Output(qa, "end")["datatype"]!.GetValue<string>());

        var choice = await InferAsync("choice", new
        {
            inputs = new object[] { Bytes("context", "she opened the door"), new { name = "choices", shape = new[] { 1, 2 }, datatype = "BYTES", data = new[] { "and went out", "and ate it" } } },
        });
        var choiceNative = (await NativeAsync("choice", new[] { new { context = "she opened the door", choices = new[] { "and went out", "and ate it" } } }))[0]!;
        Assert.Equal(choiceNative["choice"]!.GetValue<long>(), Output(choice, "choice")["data"]![0]!.GetValue<long>());
        Assert.Equal("[1,2]", Output(choice, "probabilities")["shape"]!.ToJsonString());

        var ner = Output(await InferAsync("ner", new { inputs = new[] { Bytes("text", "the old man went to paris") }, parameters = new { aggregation = "simple" } }), "entities");
        var (_, nerNative) = await host.PostAsync("/v1/heads/ner/predict", new { inputs = new[] { "the old man went to paris" }, parameters = new { aggregation = "simple" } });
        Assert.Equal("BYTES", ner["datatype"]!.GetValue<string>());
        Assert.Equal(nerNative["outputs"]![0]!.ToJsonString(), JsonNode.Parse(ner["data"]![0]!.GetValue<string>())!.ToJsonString());

        // QA with top_k answers a list per input: no typed output fits, so each answer comes as JSON.
        var topK = await InferAsync("qa", new
        {
            inputs = new[] { Bytes("question", "where did the man go"), Bytes("context", "the old man went to the city with his dog") },
            parameters = new { top_k = 2 },
        });
        var output = Assert.Single(topK["outputs"]!.AsArray())!;
        Assert.Equal("output", output["name"]!.GetValue<string>());
        Assert.Equal(2, JsonNode.Parse(output["data"]![0]!.GetValue<string>())!.AsArray().Count);
    }

    [Theory]
    [InlineData("""{"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}""", "datatype must be BYTES")]
    [InlineData("""{"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a"]}]}""", "shape [2] holds 2 elements but data has 1")]
    [InlineData("""{"inputs": [{"name": "txt", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}""", "has no input 'txt'")]
    [InlineData("""{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}, {"name": "text_pair", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}""", "the first dimension must agree")]
    [InlineData("""{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [""]}]}""", "text is empty")]
    [InlineData("""{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}], "outputs": [{"name": "logits"}]}""", "no output 'logits'")]
    [InlineData("""{"inputs": []}""", "inputs must be a non-empty array")]
    public async Task Bad_requests_are_400_with_the_specs_error_object(string json, string message)
    {
        using var response = await host.Client.PostAsync("/v2/models/sentiment/infer", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal(["error"], body.AsObject().Select(p => p.Key));
        Assert.Contains(message, body["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_failed_head_is_503_and_an_unknown_route_under_v2_answers_in_the_specs_shape()
    {
        var (status, body) = await host.PostAsync("/v2/models/broken/infer", new { inputs = new[] { Bytes("text", "a") } });
        Assert.Equal(503, status);
        Assert.Contains("head 'broken' is failed", body["error"]!.GetValue<string>());
        (status, body) = await host.GetAsync("/v2/models/sentiment/versions/1");
        Assert.Equal(404, status);
        Assert.Equal(["error"], body.AsObject().Select(p => p.Key));
    }
}
