using BertHost.Abstractions;
using BertHost.Core.Body;
using BertHost.Core.Config;
using BertHost.Core.Serving;
using BertHost.Tests.Bert;
using BertHost.Tests.Support;
using BertHost.Tests.Training;
using Microsoft.Extensions.Logging.Abstractions;
using static TorchSharp.torch;

namespace BertHost.Tests.Body;

/// <summary>How many tokens a body pass holds: the device's default, the cut, and what embed does with a budget.</summary>
[Collection(SeededTorchCollection.Name)]
public class PassBudgetTests
{
    [Fact]
    public void Items_are_cut_by_padded_tokens_and_count_and_one_over_the_budget_runs_alone()
    {
        // Lengths in the order given (longest first): 9 alone exceeds 8; 4+4 = 2 × 4 = 8 fits; a third 4 would be 12.
        int[] lengths = [9, 4, 4, 4, 2, 2, 2, 2, 2];
        var passes = PassBudget.Cut(lengths, _ => 1, l => l, maxTokens: 8, maxItems: 3);
        Assert.Equal([[9], [4, 4], [4, 2], [2, 2, 2], [2]], passes);
        // Items of several rows count every row.
        Assert.Equal([[2, 2], [2]], PassBudget.Cut(new[] { 2, 2, 2 }, _ => 2, l => l, maxTokens: 8, maxItems: 10));
    }

    [Fact]
    public async Task A_cpu_body_runs_passes_of_1024_tokens_unless_the_deployment_says_otherwise()
    {
        Assert.Equal(1024, PassBudget.DefaultTokens(CPU));
        Assert.Equal(16384, PassBudget.DefaultTokens(new Device("cuda:0")));
        using var body = BertBody.Load(RandomBodies.Write(32, 2, 64), new BodyOptions { Device = "cpu" });
        await using var byDevice = new BatchScheduler(body, new BatchingSection(), new ServingMetrics(), NullLogger.Instance);
        await using var configured = new BatchScheduler(body, new BatchingSection { MaxBatchTokens = 4096 }, new ServingMetrics(), NullLogger.Instance);
        Assert.Equal(1024, byDevice.MaxBatchTokens);
        Assert.Equal(4096, configured.MaxBatchTokens);
    }

    [Fact]
    public void Embeddings_do_not_depend_on_how_many_tokens_a_pass_holds()
    {
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        EmbedInput[] inputs = [new("the dog"), new("she said no", "he went to the city"), new("the old man went to the city with his dog"), new("no")];
        var together = new FeatureExtractor(body, PoolingMode.Mean, maxBatchTokens: 100_000).Embed(inputs);
        // 8 tokens per pass: every input runs alone (the longest, over the budget, too).
        var alone = new FeatureExtractor(body, PoolingMode.Mean, maxBatchTokens: 8).Embed(inputs);
        for (var i = 0; i < inputs.Length; i++)
        {
            Assert.Equal(together[i].InputIds, alone[i].InputIds);
            Assert.InRange(together[i].Embedding[0].Zip(alone[i].Embedding[0], (a, b) => Math.Abs(a - b)).Max(), 0, 1e-5);
        }
    }

    [Fact]
    public void Inputs_tokenized_before_the_body_embed_as_the_body_would_tokenize_them()
    {
        var prepared = BertBody.Prepare(ReferenceOutputs.ModelFolder("tiny-bert"));
        EmbedInput[] inputs = [new("the dog"), new("she said no", "he went to the city"), new("the old man went to the city with his dog")];
        var encoded = FeatureExtractor.Encode(prepared.Tokenizer, prepared.MaxSequenceLength, inputs, maxLength: 6);
        using var body = prepared.Load();
        var early = new FeatureExtractor(body, PoolingMode.Mean, maxLength: 6).Embed(encoded);
        var late = new FeatureExtractor(body, PoolingMode.Mean, maxLength: 6).Embed(inputs);
        for (var i = 0; i < inputs.Length; i++)
        {
            Assert.Equal(late[i].InputIds, early[i].InputIds);
            Assert.Equal(late[i].Truncated, early[i].Truncated);
            Assert.Equal(late[i].Embedding[0], early[i].Embedding[0]);
        }
        Assert.True(early[2].Truncated);

        // Tokenized for another maximum length, or another body's tokenizer: refused, not embedded with the wrong ids.
        Assert.Contains("tokenized for another body", Assert.Throws<ArgumentException>(() =>
            new FeatureExtractor(body, PoolingMode.Mean, maxLength: 8).Embed(encoded)).Message);
        using var other = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        Assert.Throws<ArgumentException>(() => new FeatureExtractor(other, PoolingMode.Mean, maxLength: 6).Embed(encoded));
    }
}
