using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Tests.Support;

namespace BertHost.Tests.Integration;

/// <summary>
/// The four built-in heads on ONE body over real HTTP, each imported from a Hugging Face task folder fine-tuned on
/// that body (sequence classification, token classification and QA without pooler, multiple choice), compared with
/// the independent references, plus a multi-head request that shares one body row.
/// </summary>
public sealed class AllHeadsIntegrationTests : IAsyncLifetime
{
    private TestHost _host = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        _host = await TestHost.StartAsync($"""
            host: {"{"} urls: "http://127.0.0.1:0" {"}"}
            body: {"{"} checkpoint: {ReferenceOutputs.ModelFolder("tiny-bert")} {"}"}
            heads:
            {TestHost.ImportedHeads()}
            """);
        _client = _host.Client;
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private async Task<JsonArray> PredictAsync(string head, object input, object? parameters = null)
    {
        using var response = await _client.PostAsJsonAsync($"/v1/heads/{head}/predict", new { inputs = new[] { input }, parameters = parameters ?? new { } });
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.True(response.IsSuccessStatusCode, body.ToJsonString());
        return body["outputs"]!.AsArray();
    }

    private static JsonElement Expected(string name) =>
        JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("models", $"{name}.expected.json"))).RootElement.Clone();

    [Fact]
    public async Task Every_imported_head_is_ready_on_the_shared_body()
    {
        using var response = await _client.GetAsync("/v1/heads");
        var heads = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["heads"]!.AsArray();
        Assert.Equal(["sentiment", "ner", "qa", "choice"], heads.Select(h => h!["name"]!.GetValue<string>()));
        Assert.All(heads, h => Assert.Equal("ready", h!["state"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Token_classification_entities_match_the_hf_pipeline_reference()
    {
        var c = Expected("tiny-bert-tokcls").GetProperty("cases")[0];
        var outputs = await PredictAsync("ner", new { text = c.GetProperty("text").GetString() }, new { aggregation = "first" });
        var expected = c.GetProperty("outputs").GetProperty("first").EnumerateArray().ToArray();
        var actual = outputs[0]!.AsArray();
        Assert.Equal(expected.Length, actual.Count);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i].GetProperty("entity_group").GetString(), actual[i]!["entity_group"]!.GetValue<string>());
            Assert.Equal(expected[i].GetProperty("start").GetInt32(), actual[i]!["start"]!.GetValue<int>());
            Assert.Equal(expected[i].GetProperty("end").GetInt32(), actual[i]!["end"]!.GetValue<int>());
            Assert.InRange(Math.Abs(expected[i].GetProperty("score").GetDouble() - actual[i]!["score"]!.GetValue<double>()), 0, 1e-4);
        }
    }

    [Fact]
    public async Task Question_answering_spans_match_the_hf_pipeline_reference()
    {
        var c = Expected("tiny-bert-qa").GetProperty("cases")[0];
        var outputs = await PredictAsync("qa", new { question = c.GetProperty("question").GetString(), context = c.GetProperty("context").GetString() });
        var expected = c.GetProperty("answers")[0];
        Assert.Equal(expected.GetProperty("answer").GetString(), outputs[0]!["answer"]!.GetValue<string>());
        Assert.Equal(expected.GetProperty("start").GetInt32(), outputs[0]!["start"]!.GetValue<int>());
        Assert.Equal(expected.GetProperty("end").GetInt32(), outputs[0]!["end"]!.GetValue<int>());
        Assert.InRange(Math.Abs(expected.GetProperty("score").GetDouble() - outputs[0]!["score"]!.GetValue<double>()), 0, 1e-4);
    }

    [Fact]
    public async Task Multiple_choice_probabilities_match_the_reference()
    {
        var c = Expected("tiny-bert-mc").GetProperty("cases")[0];
        var choices = c.GetProperty("choices").EnumerateArray().Select(x => x.GetString()).ToArray();
        var outputs = await PredictAsync("choice", new { context = c.GetProperty("context").GetString(), choices });
        Assert.Equal(c.GetProperty("choice").GetInt32(), outputs[0]!["choice"]!.GetValue<int>());
        var expected = c.GetProperty("probabilities").EnumerateArray().Select(p => p.GetDouble()).ToArray();
        var actual = outputs[0]!["probabilities"]!.AsArray().Select(p => p!.GetValue<double>()).ToArray();
        Assert.InRange(expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max(), 0, 1e-4);
    }

    [Fact]
    public async Task Classification_and_ner_of_one_text_share_one_body_row()
    {
        var passes = _host.Engine.Scheduler.BodyPasses;
        var rows = _host.Engine.Scheduler.BodyRows;
        using var response = await _client.PostAsJsonAsync("/v1/predict", new { heads = new[] { "sentiment", "ner" }, inputs = new[] { new { text = "the old man went to the city" } } });
        var output = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["outputs"]![0]!;
        Assert.NotNull(output["sentiment"]!["label"]);
        Assert.IsType<JsonArray>(output["ner"]);
        Assert.Equal(1, _host.Engine.Scheduler.BodyPasses - passes);
        Assert.Equal(1, _host.Engine.Scheduler.BodyRows - rows);
    }
}
