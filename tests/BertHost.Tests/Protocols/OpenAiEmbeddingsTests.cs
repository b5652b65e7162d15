using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Embeddings;

namespace BertHost.Tests.Protocols;

/// <summary>POST /v1/embeddings through the official OpenAI .NET SDK and as raw JSON, against the host's own answers.</summary>
public sealed class OpenAiEmbeddingsTests(ProtocolHost host) : IClassFixture<ProtocolHost>
{
    private EmbeddingClient Client(string model) =>
        new(model, new ApiKeyCredential("no-auth-on-this-host"), new OpenAIClientOptions { Endpoint = new Uri(host.BaseAddress, "/v1") });

    private async Task<float[][]> NativeAsync(string head, params string[] texts)
    {
        var (status, body) = await host.PostAsync($"/v1/heads/{head}/predict", new { inputs = texts });
        Assert.Equal(200, status);
        return body["outputs"]!.AsArray().Select(o => o!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray()).ToArray();
    }

    private async Task<int> TokensAsync(string text)
    {
        var (status, body) = await host.PostAsync("/tokenize", new { inputs = text });
        Assert.Equal(200, status);
        return body[0]!.AsArray().Count;
    }

    [Fact]
    public async Task The_official_sdk_gets_the_heads_vectors_bit_for_bit_with_usage_in_tokens()
    {
        string[] texts = ["the old man went to the city", "his dog"];
        var result = await Client("emb").GenerateEmbeddingsAsync(texts);
        var expected = await NativeAsync("emb", texts);
        Assert.Equal(2, result.Value.Count);
        for (var i = 0; i < texts.Length; i++)
        {
            Assert.Equal(i, result.Value[i].Index);
            Assert.Equal(expected[i], result.Value[i].ToFloats().ToArray());   // the SDK asks for base64: the float32 bits survive
        }
        Assert.Equal("emb", result.Value.Model);
        var tokens = await TokensAsync(texts[0]) + await TokensAsync(texts[1]);
        Assert.Equal(tokens, result.Value.Usage.InputTokenCount);
        Assert.Equal(tokens, result.Value.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task Dimensions_from_the_sdk_cut_and_renormalise()
    {
        var full = (await NativeAsync("emb", "the city", "a dog"));
        var result = await Client("emb").GenerateEmbeddingsAsync(["the city", "a dog"], new EmbeddingGenerationOptions { Dimensions = 5 });
        for (var i = 0; i < 2; i++)
        {
            var v = result.Value[i].ToFloats().ToArray();
            Assert.Equal(5, v.Length);
            // The head's vector is normalised over all dimensions; cut to 5 and normalised again it is this one.
            var head = full[i][..5];
            var norm = Math.Sqrt(head.Sum(x => (double)x * x));
            for (var j = 0; j < 5; j++) Assert.Equal(head[j] / norm, v[j], 5);
            Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 5);
        }
    }

    [Fact]
    public async Task Sdk_errors_carry_the_status_and_message_of_the_openai_error_shape()
    {
        var unknown = await Assert.ThrowsAsync<ClientResultException>(() => Client("nope").GenerateEmbeddingAsync("x"));
        Assert.Equal(404, unknown.Status);
        Assert.Contains("no head named 'nope'", unknown.Message);
        var wrongKind = await Assert.ThrowsAsync<ClientResultException>(() => Client("sentiment").GenerateEmbeddingAsync("x"));
        Assert.Equal(400, wrongKind.Status);
        Assert.Contains("head 'sentiment' is a text-classification head", wrongKind.Message);
        var tooWide = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client("emb8").GenerateEmbeddingAsync("x", new EmbeddingGenerationOptions { Dimensions = 9 }));
        Assert.Equal(400, tooWide.Status);
        Assert.Contains("dimensions must be at most 8", tooWide.Message);
    }

    [Fact]
    public async Task Float_and_base64_encodings_carry_the_same_vector()
    {
        var (s1, floats) = await host.PostAsync("/v1/embeddings", new { input = "a dog", model = "emb8" });
        var (s2, base64) = await host.PostAsync("/v1/embeddings", new { input = new[] { "a dog" }, model = "emb8", encoding_format = "base64", user = "ignored" });
        Assert.Equal((200, 200), (s1, s2));
        Assert.Equal("list", floats["object"]!.GetValue<string>());
        Assert.Equal("embedding", floats["data"]![0]!["object"]!.GetValue<string>());
        var bytes = Convert.FromBase64String(base64["data"]![0]!["embedding"]!.GetValue<string>());
        var decoded = Enumerable.Range(0, bytes.Length / 4).Select(i => BitConverter.ToSingle(bytes, i * 4)).ToArray();
        Assert.Equal(floats["data"]![0]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()), decoded);
        Assert.Equal(8, decoded.Length);
    }

    [Theory]
    [InlineData("""{"input": [[101, 102]], "model": "emb"}""", HttpStatusCode.BadRequest, "input[0]", "token-id inputs are not supported")]
    [InlineData("""{"input": [1, 2], "model": "emb"}""", HttpStatusCode.BadRequest, "input[0]", "token-id inputs are not supported")]
    [InlineData("""{"model": "emb"}""", HttpStatusCode.BadRequest, "input", "input is required")]
    [InlineData("""{"input": "x", "model": "emb", "encoding": "float"}""", HttpStatusCode.BadRequest, "encoding", "unknown field 'encoding'; expected input, model, encoding_format, dimensions, user")]
    [InlineData("""{"input": "x", "model": "emb", "encoding_format": "int8"}""", HttpStatusCode.BadRequest, "encoding_format", "not one of float, base64")]
    [InlineData("""{"input": "", "model": "emb"}""", HttpStatusCode.BadRequest, "inputs[0].text", "text is empty")]
    [InlineData("""{"input": "x"}""", HttpStatusCode.BadRequest, "model", "several embedding heads (emb, emb8)")]
    public async Task Errors_are_in_openai_shape_naming_the_param(string json, HttpStatusCode status, string param, string message)
    {
        using var response = await host.Client.PostAsync("/v1/embeddings", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.Equal(status, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!.AsObject();
        Assert.Equal(["message", "type", "param", "code"], error.Select(p => p.Key));
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        Assert.Equal(param, error["param"]!.GetValue<string>());
        Assert.Contains(message, error["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Token_limits_and_invalid_utf8_hold_on_this_route_too()
    {
        // Each input is cut to the body's 64 tokens; eight of them are over host.max_request_tokens (400).
        var longText = string.Join(' ', Enumerable.Repeat("dog", 100));
        var (status, body) = await host.PostAsync("/v1/embeddings", new { input = Enumerable.Repeat(longText, 8).ToArray(), model = "emb" });
        Assert.Equal(413, status);
        Assert.Contains("host.max_request_tokens", body["error"]!["message"]!.GetValue<string>());
        Assert.Equal("payload_too_large", body["error"]!["code"]!.GetValue<string>());

        var bytes = Encoding.UTF8.GetBytes("""{"input": "ab", "model": "emb"}""");
        bytes[11] = 0xC3;   // 'a' becomes a lead byte without its continuation
        using var response = await host.Client.PostAsync("/v1/embeddings", new ByteArrayContent(bytes) { Headers = { { "Content-Type", "application/json" } } });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("bad_request", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
    }
}
