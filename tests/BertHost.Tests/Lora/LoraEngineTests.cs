using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Body;
using BertHost.Core.Config;
using BertHost.Core.Lora;
using BertHost.Core.Serving;
using BertHost.Core.Text;
using BertHost.Tests.Plugins;
using BertHost.Tests.Support;
using BertHost.Tests.Training;
using Microsoft.Extensions.Logging.Abstractions;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Lora;

/// <summary>
/// A deployment (YAML) with a plain classifier, a LoRA classifier served in the shared pass and one served merged: the
/// engine picks each adapter up from the head's weights folder, and each head answers what the same head folder
/// answers on a body with its adapter merged in.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public class LoraEngineTests
{
    private static readonly JsonElement NoParameters = JsonDocument.Parse("{}").RootElement;

    private static List<double> Numbers(JsonNode? node) => node switch
    {
        JsonObject o => o.OrderBy(kv => kv.Key, StringComparer.Ordinal).SelectMany(kv => Numbers(kv.Value)).ToList(),
        JsonArray a => a.SelectMany(Numbers).ToList(),
        JsonValue v when v.TryGetValue<double>(out var d) => [d],
        _ => [],
    };

    private static string SaveHead(BertBody body, LoraAdapter? adapter, int seed)
    {
        var folder = Path.Combine(TempFolder(), "head");
        manual_seed(seed);
        using var head = TrainingData.Head(body);
        head.Save(folder, new HeadSaveInfo(body.Fingerprint, null));
        if (adapter is not null) LoraHeadFolder.Attach(folder, adapter);
        return folder;
    }

    private static JsonNode Reference(string headFolder, LoraAdapter? adapter, string text)
    {
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { Device = "cpu", CpuAttentionKernel = false });
        adapter?.MergeInto(body.Model);
        using var head = TrainingData.Head(body, weights: headFolder);
        var features = head.Encode(JsonSerializer.SerializeToElement(new { text }), NoParameters);
        using var scope = NewDisposeScope();
        using var output = body.Forward(PaddedBatch.Create(features.Sequences, body.Tokenizer.PadTokenId));
        var batch = new HeadBatch([features], body.Device);
        return head.Decode(head.Forward(output, batch), batch)[0];
    }

    [Fact]
    public async Task The_engine_serves_plain_lora_and_merged_heads_of_one_deployment_each_as_its_merged_body_would()
    {
        using var body = TrainingData.LoadBody();
        using var serve = LoraPassTests.RandomAdapter(body, new LoraSettings(4, 8, 0, [LoraSettings.AllLinear]), seed: 31);
        using var merge = LoraPassTests.RandomAdapter(body, new LoraSettings(2, 4, 0, ["query", "value"]), seed: 32);
        var plainFolder = SaveHead(body, null, 1);
        var serveFolder = SaveHead(body, serve, 2);
        var mergeFolder = SaveHead(body, merge, 3);
        var yaml = Path.Combine(TempFolder(), "lora.yaml");
        File.WriteAllText(yaml, $"""
            body:
              checkpoint: {ReferenceOutputs.ModelFolder("tiny-bert")}
              device: cpu
              prepack_weights: true
            batching:
              max_wait_ms: 20
            heads:
              - name: plain
                kind: text-classification
                plugin: {ClassificationPlugin}
                labels: [negative, positive]
                weights: {plainFolder}
              - name: tuned
                kind: text-classification
                plugin: {ClassificationPlugin}
                labels: [negative, positive]
                weights: {serveFolder}
              - name: merged
                kind: text-classification
                plugin: {ClassificationPlugin}
                labels: [negative, positive]
                weights: {mergeFolder}
                adapter: merge
            """);
        var config = HostConfigLoader.Load(yaml);
        Assert.Equal(AdapterModes.Serve, config.Heads[1].Adapter);
        Assert.Equal(AdapterModes.Merge, config.Heads[2].Adapter);
        await using var engine = InferenceEngine.Start(config, NullLoggerFactory.Instance, new ServingMetrics());
        Assert.Equal("serve", (string)engine.FindHead("tuned", withDetails: true)!.Details!["adapter"]!["mode"]!);
        Assert.Equal("merge", (string)engine.FindHead("merged", withDetails: true)!.Details!["adapter"]!["mode"]!);
        Assert.Null(engine.FindHead("plain", withDetails: true)!.Details!["adapter"]);

        string[] texts = ["a fine film", "the worst thing i have seen this year , and long"];
        var inputs = texts.Select(t => JsonSerializer.SerializeToElement(new { text = t })).ToList();
        var answers = await Task.WhenAll(new[] { "plain", "tuned", "merged" }.Select(h => engine.PredictAsync(h, inputs, NoParameters, CancellationToken.None)));
        var folders = new[] { (plainFolder, (LoraAdapter?)null), (serveFolder, serve), (mergeFolder, merge) };
        for (var h = 0; h < 3; h++)
        for (var i = 0; i < texts.Length; i++)
        {
            var expected = Numbers(Reference(folders[h].Item1, folders[h].Item2, texts[i]));
            var got = Numbers(answers[h][i]);
            Assert.Equal(expected.Count, got.Count);
            Assert.True(expected.Zip(got, (x, y) => Math.Abs(x - y)).Max() <= 1e-4, $"head {h} input {i}: {answers[h][i].ToJsonString()} vs {string.Join(",", expected)}");
        }
    }

    [Fact]
    public void An_unknown_adapter_mode_is_a_config_error_naming_the_key()
    {
        var yaml = $"""
            body:
              checkpoint: {ReferenceOutputs.ModelFolder("tiny-bert")}
            heads:
              - name: s
                kind: text-classification
                plugin: {ClassificationPlugin}
                labels: [a, b]
                adapter: fuse
            """;
        var e = Assert.Throws<ConfigException>(() => HostConfigLoader.Parse(yaml, Path.Combine(TempFolder(), "x.yaml")));
        Assert.Contains("adapter", e.Message);
        Assert.Contains("must be serve", e.Message);
    }
}
