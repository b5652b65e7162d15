using BertHost.Abstractions;
using BertHost.Core.Bert;
using BertHost.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;
using BertHost.Core.Body;

namespace BertHost.Tests.Bert;

/// <summary>A daemon runs the body millions of times: a pass must leave no live tensors behind once its output is disposed.</summary>
public class TensorLifetimeTests
{
    private static long LiveTensors => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    [Fact]
    public void Eval_passes_release_every_intermediate_tensor()
    {
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        var batch = body.Encode(["the old man went to the city", "she said no"], null);
        // Warm-up: first calls may create cached tensors inside libtorch wrappers.
        body.Forward(batch, outputHiddenStates: true).Dispose();

        var before = LiveTensors;
        for (var i = 0; i < 5; i++)
        {
            using var output = body.Forward(batch, outputHiddenStates: i % 2 == 0);
            using var mean = Pooling.Pool(output, PoolingMode.Mean);
            using var max = Pooling.Pool(output, PoolingMode.Max);
        }
        Assert.Equal(before, LiveTensors);
    }

    [Fact]
    public void Feature_extraction_releases_every_tensor()
    {
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        var extractor = new FeatureExtractor(body, PoolingMode.None, batchSize: 2);
        EmbedInput[] inputs = [new("the dog"), new("she said no", "he went to the city"), new("the old man")];
        extractor.Embed(inputs);
        var before = LiveTensors;
        extractor.Embed(inputs);
        new FeatureExtractor(body, PoolingMode.Pooler).Embed(inputs);
        Assert.Equal(before, LiveTensors);
    }
}
