using BertHost.Abstractions;
using BertHost.Client;
using BertHost.Client.Embeddings;
using BertHost.Core.Body;
using BertHost.Embeddings;
using BertHost.Tests.Support;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;

namespace BertHost.Tests.Client;

/// <summary>
/// Microsoft.Extensions.AI's IEmbeddingGenerator over HTTP (the host's OpenAI route) equals the embedding head's own
/// answers, and the in-process generator over the same body equals the HTTP one.
/// </summary>
public sealed class EmbeddingGeneratorTests(ClientHost host, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ClientHost>
{
    // Different lengths, so passes have padding; the last is longer than tiny-bert's 64 tokens (truncated by both).
    private static readonly string[] Texts =
    [
        "a dog", "the old man went to the city with his dog", "his dog", "where is the city by the river",
        "the cat sat on the mat and looked at the old man", string.Join(' ', Enumerable.Repeat("the river runs by the city", 20)),
    ];

    private async Task<float[][]> HeadVectorsAsync(string head, IEnumerable<string> texts, int? dimensions = null) =>
        (await host.Client.EmbedWithHeadAsync(head, texts, dimensions is null ? null : new EmbeddingParameters { Dimensions = dimensions }))
        .Select(o => o.Embedding).ToArray();

    [Fact]
    public async Task The_http_generator_gives_the_heads_vectors_in_order_with_usage_and_metadata()
    {
        using var generator = host.Client.AsEmbeddingGenerator("emb");
        var embeddings = await generator.GenerateAsync(Texts);
        var expected = await HeadVectorsAsync("emb", Texts);
        Assert.Equal(expected, embeddings.Select(e => e.Vector.ToArray()));
        Assert.All(embeddings, e => Assert.Equal("emb", e.ModelId));
        var tokens = (await host.Client.EmbedWithHeadAsync("emb", Texts)).Sum(o => o.Tokens);
        Assert.Equal((tokens, tokens), (embeddings.Usage!.InputTokenCount, embeddings.Usage.TotalTokenCount));
        Assert.Equal(64, (await host.Client.EmbedWithHeadAsync("emb", [Texts[5]]))[0].Tokens);   // cut to tiny-bert's 64 positions

        var metadata = generator.GetService<EmbeddingGeneratorMetadata>()!;
        Assert.Equal(("berthost", "emb", host.Host.BaseAddress), (metadata.ProviderName, metadata.DefaultModelId, metadata.ProviderUri));
        Assert.Same(host.Client, generator.GetService<BertHostClient>());
        Assert.Null(generator.GetService<EmbeddingGeneratorMetadata>("a key"));

        // Options: the model and the dimensions (cut, then normalised again by the head).
        var cut = await generator.GenerateAsync(Texts[..2], new EmbeddingGenerationOptions { ModelId = "emb8", Dimensions = 5 });
        Assert.Equal(await HeadVectorsAsync("emb8", Texts[..2], 5), cut.Select(e => e.Vector.ToArray()));
        Assert.All(cut, e => Assert.Equal("emb8", e.ModelId));
        var single = await generator.GenerateVectorAsync("his dog");
        Assert.Equal(expected[2], single.ToArray());
    }

    [Fact]
    public async Task Inputs_beyond_a_request_are_sent_in_batches_and_the_generator_comes_from_di()
    {
        // The host takes at most 16 inputs per request; 40 inputs go in batches of 16, 16 and 8.
        var many = Enumerable.Range(0, 40).Select(i => $"text number {i} about the city").ToArray();
        using var unbatched = new BertHostEmbeddingGenerator(host.Client, "emb8");
        var tooMany = await Assert.ThrowsAsync<BertHostException>(() => unbatched.GenerateAsync(many));
        Assert.Equal((413, "payload_too_large"), (tooMany.Status, tooMany.ErrorCode));

        var services = new ServiceCollection();
        services.AddBertHostClient(o => o.BaseAddress = host.Host.BaseAddress);
        services.AddBertHostEmbeddingGenerator(head: "emb8", dimensions: 6);
        using var provider = services.BuildServiceProvider();
        var fromDi = provider.GetRequiredService<IEmbeddingGenerator<string, Embedding<float>>>();
        Assert.Equal(("emb8", 6), (fromDi.GetService<EmbeddingGeneratorMetadata>()!.DefaultModelId, fromDi.GetService<EmbeddingGeneratorMetadata>()!.DefaultModelDimensions));
        using var batched = new BertHostEmbeddingGenerator(provider.GetRequiredService<BertHostClient>(), "emb8", 6) { MaxBatchSize = 16 };
        var vectors = await batched.GenerateAsync(many);
        var expected = new List<float[]>();
        foreach (var chunk in many.Chunk(16)) expected.AddRange(await HeadVectorsAsync("emb8", chunk, 6));
        Assert.Equal(expected, vectors.Select(v => v.Vector.ToArray()));
        Assert.Equal(expected.Take(3), (await fromDi.GenerateAsync(many[..3])).Select(v => v.Vector.ToArray()));

        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => batched.GenerateAsync(many, null, cancelled.Token));
    }

    [Fact]
    public async Task The_in_process_generator_equals_the_http_one_on_the_same_body()
    {
        using var inProcess = BodyEmbeddingGenerator.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { Device = "cpu" },
            new BodyEmbeddingOptions { BatchSize = 4 });
        using var http = host.Client.AsEmbeddingGenerator("emb");
        var overall = 0f;
        foreach (var dimensions in new int?[] { null, 5 })
        {
            var options = new EmbeddingGenerationOptions { Dimensions = dimensions };
            var local = await inProcess.GenerateAsync(Texts, options);
            var remote = await http.GenerateAsync(Texts, options);
            Assert.Equal(remote.Usage!.InputTokenCount, local.Usage!.InputTokenCount);
            for (var i = 0; i < Texts.Length; i++)
            {
                var (a, b) = (local[i].Vector.ToArray(), remote[i].Vector.ToArray());
                Assert.Equal(dimensions ?? 32, a.Length);
                Assert.Equal(b.Length, a.Length);
                var worst = a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
                Assert.True(worst <= 1e-5, $"text {i}, dimensions {dimensions}: max |diff| {worst}");
                overall = Math.Max(overall, worst);
                Assert.Equal(1.0, Math.Sqrt(a.Sum(x => (double)x * x)), 5);
            }
        }
        output.WriteLine($"in-process vs HTTP: max |diff| {overall:E2} over {Texts.Length} texts, full and 5 dimensions");
        Assert.Equal("tiny-bert", inProcess.GetService<EmbeddingGeneratorMetadata>()!.DefaultModelId);
        Assert.NotNull(inProcess.GetService<BertBody>());
    }

    [Fact]
    public async Task The_in_process_generator_pools_as_asked_and_refuses_what_it_cannot_do()
    {
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { Device = "cpu" });
        using var cls = new BodyEmbeddingGenerator(body, new BodyEmbeddingOptions { Pooling = PoolingMode.Cls, Dimensions = 8, ModelId = "cls8" });
        using var http = host.Client.AsEmbeddingGenerator("emb8");   // cls pooling, 8 dimensions
        var local = await cls.GenerateAsync(Texts[..3]);
        var remote = await http.GenerateAsync(Texts[..3]);
        for (var i = 0; i < 3; i++)
            Assert.True(local[i].Vector.ToArray().Zip(remote[i].Vector.ToArray(), (x, y) => Math.Abs(x - y)).Max() <= 1e-5);
        Assert.All(local, e => Assert.Equal("cls8", e.ModelId));

        using var raw = new BodyEmbeddingGenerator(body, new BodyEmbeddingOptions { Normalize = false });
        Assert.NotEqual(1.0, Math.Sqrt((await raw.GenerateVectorAsync("a dog")).ToArray().Sum(x => (double)x * x)), 3);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => cls.GenerateAsync(["a"], new EmbeddingGenerationOptions { Dimensions = 9 }));
        await Assert.ThrowsAsync<ArgumentException>(() => cls.GenerateAsync(["a"], new EmbeddingGenerationOptions { ModelId = "other" }));
        await Assert.ThrowsAsync<ArgumentException>(() => cls.GenerateAsync(["a", " "]));
        Assert.Throws<ArgumentException>(() => new BodyEmbeddingGenerator(body, new BodyEmbeddingOptions { Pooling = PoolingMode.None }));
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cls.GenerateAsync(Texts, null, cancelled.Token));
        // The body belongs to the caller here: the generators leave it usable.
        cls.Dispose();
        Assert.Equal(32, body.Config.HiddenSize);
        Assert.Single(await raw.GenerateAsync(["still works"]));
    }
}
