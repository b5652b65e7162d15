using BertHost.Core.Bert;
using BertHost.Core.Text;
using static TorchSharp.torch;
using BertHost.Core.Body;

namespace BertHost.Benchmarks.Onnx;

/// <summary>How far ONNX Runtime's outputs are from the host's on the same batch.</summary>
public static class OnnxParity
{
    /// <summary>Max |ORT − host| over last_hidden_state at real (unpadded) tokens and over the pooler output.</summary>
    public static double MaxDifference(BertBody body, OnnxBody onnx, PaddedBatch batch)
    {
        var (hidden, pooled) = onnx.Run(batch);
        using var scope = NewDisposeScope();
        using var output = body.Forward(batch);
        var ours = output.LastHiddenState.to(ScalarType.Float32, CPU).contiguous().data<float>().ToArray();
        var h = body.Config.HiddenSize;
        double max = 0;
        for (var r = 0; r < batch.BatchSize; r++)
            for (var t = 0; t < batch.Lengths[r]; t++)
                for (var i = 0; i < h; i++)
                {
                    var at = ((r * batch.SequenceLength) + t) * h + i;
                    max = Math.Max(max, Math.Abs(ours[at] - hidden[at]));
                }
        if (pooled is not null && output.HasPooledOutput)
        {
            var ourPooled = output.PooledOutput.to(ScalarType.Float32, CPU).contiguous().data<float>().ToArray();
            for (var i = 0; i < pooled.Length; i++) max = Math.Max(max, Math.Abs(ourPooled[i] - pooled[i]));
        }
        return max;
    }
}
