using System.Text.Json;
using BertHost.Abstractions.Heads;
using BertHost.Core.Body;
using BertHost.Core.Config;
using BertHost.Core.Lora;
using BertHost.Core.Serving;
using BertHost.Core.Text;
using BertHost.Tests.Bert;
using BertHost.Tests.Serving;
using BertHost.Tests.Training;
using Microsoft.Extensions.Logging.Abstractions;
using static TorchSharp.torch;

namespace BertHost.Tests.Lora;

/// <summary>
/// The scheduler's mixed passes: plain heads, three LoRA heads (served in the shared pass) and one merged head (its
/// private body) asked for the same inputs in the same batch, each answer against the head run alone on the body with
/// its adapter merged (plain: the base body), padded, libtorch's Linear and SDPA.
/// </summary>
[Collection(SeededTorchCollection.Name)]
public class LoraServingTests
{
    private static readonly JsonElement NoParameters = JsonDocument.Parse("{}").RootElement;

    private static JsonElement Input(string text) => JsonSerializer.SerializeToElement(new { text });

    private static float[] Vector(HeadWork work) => work.Output!.AsArray().Select(v => v!.GetValue<float>()).ToArray();

    private static float[] Alone(BertBody reference, IHead head, string text)
    {
        var features = head.Encode(Input(text), NoParameters);
        using var scope = NewDisposeScope();
        using var output = reference.Forward(PaddedBatch.Create(features.Sequences, reference.Tokenizer.PadTokenId));
        var batch = new HeadBatch([features], reference.Device);
        return head.Decode(head.Forward(output, batch), batch)[0].AsArray().Select(v => v!.GetValue<float>()).ToArray();
    }

    [Fact]
    public async Task A_batch_mixing_plain_lora_and_merged_heads_equals_each_head_alone_on_its_merged_body()
    {
        var folder = RandomBodies.Write(48, 4, 200);
        using var body = BertBody.Load(folder, new BodyOptions { Device = "cpu", PrepackWeights = true, PackedMaxRows = 4096 });
        var a = LoraPassTests.RandomAdapter(body, new LoraSettings(4, 8, 0, ["query", "value"]), seed: 21);
        var b = LoraPassTests.RandomAdapter(body, new LoraSettings(8, 16, 0, [LoraSettings.AllLinear]), seed: 22);
        var c = LoraPassTests.RandomAdapter(body, new LoraSettings(2, 4, 0, ["key", "intermediate.dense"]), seed: 23);
        using var d = LoraPassTests.RandomAdapter(body, new LoraSettings(4, 8, 0, ["query", "value"]), seed: 24);
        var privateBody = BertBody.Load(folder, new BodyOptions { Device = "cpu", PrepackWeights = true, PackedMaxRows = 4096, MergeAdapter = d });

        using var plainCls = new VectorHead("plain-cls", body.Tokenizer);
        using var plainMean = new VectorHead("plain-mean", body.Tokenizer, mean: true);
        using var loraA = new VectorHead("lora-a", body.Tokenizer, mean: true);
        using var loraB = new VectorHead("lora-b", body.Tokenizer);
        using var loraC = new VectorHead("lora-c", body.Tokenizer, mean: true);
        using var merged = new VectorHead("merged-d", body.Tokenizer, mean: true);
        HeadSlot Slot(IHead head, LoraAdapter? adapter = null, BertBody? mergedBody = null) =>
            new(head.Name, head.Kind, head, HeadStates.Ready, null, null, null) { Adapter = adapter, MergedBody = mergedBody };
        var slots = new[] { Slot(plainCls), Slot(loraA, a), Slot(plainMean), Slot(loraB, b), Slot(loraC, c), Slot(merged, mergedBody: privateBody) };

        string[] texts = ["the dog", "the old man went to the city with his dog", "she said no", string.Join(' ', Enumerable.Repeat("we will see what happens", 6))];
        var scheduler = new BatchScheduler(body, new BatchingSection { MaxWaitMs = 200 }, new ServingMetrics(), NullLogger.Instance);
        List<InferenceJob> jobs;
        await using (scheduler)
        {
            // Each input to every head in one job (one body pass for the shared rows, one for the merged head).
            jobs = texts.Select(t => new InferenceJob(slots.Select(s => new HeadWork(s, s.Head!.Encode(Input(t), NoParameters))).ToList(), CancellationToken.None)).ToList();
            scheduler.Enqueue(jobs);
            await Task.WhenAll(jobs.Select(j => j.Completion));
            // 4 inputs: 4 rows shared by the two plain heads + 4 per LoRA adapter in the shared pass; the merged head's own pass.
            Assert.Equal(2, scheduler.BodyPasses);
            Assert.Equal(4 + 3 * 4 + 4, scheduler.BodyRows);
        }

        using var plainReference = BertBody.Load(folder, new BodyOptions { Device = "cpu", CpuAttentionKernel = false });
        var references = new Dictionary<string, BertBody> { ["plain-cls"] = plainReference, ["plain-mean"] = plainReference };
        foreach (var (name, adapter) in new[] { ("lora-a", a), ("lora-b", b), ("lora-c", c), ("merged-d", d) })
            references[name] = LoraPassTests.Merged(folder, adapter);
        try
        {
            for (var i = 0; i < texts.Length; i++)
            foreach (var work in jobs[i].Work)
            {
                var expected = Alone(references[work.Slot.Name], work.Slot.Head!, texts[i]);
                var got = Vector(work);
                var diff = expected.Zip(got, (x, y) => Math.Abs(x - y)).Max();
                Assert.True(diff <= 1e-4, $"{work.Slot.Name} on input {i}: max difference {diff}");
            }
            // The adapters make a difference: the LoRA heads' answers are not the plain ones.
            var plainAnswer = Alone(plainReference, loraA, texts[1]);
            Assert.True(plainAnswer.Zip(Vector(jobs[1].Work[1]), (x, y) => Math.Abs(x - y)).Max() > 1e-3);
        }
        finally
        {
            foreach (var (name, reference) in references) if (name.StartsWith("lora") || name.StartsWith("merged")) reference.Dispose();
            foreach (var slot in slots) slot.DisposeAdapter();
        }
    }
}
