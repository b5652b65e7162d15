using BertHost.Core.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace BertHost.Benchmarks.Onnx;

/// <summary>
/// The same body in ONNX Runtime, set up the way a .NET user serving BERT would: CPU provider, full graph optimisation,
/// <paramref name="threads"/> intra-op threads (equal to libtorch's), sequential execution. Its pool spins between
/// calls unless <paramref name="spinning"/> is false — set to match libtorch's OpenMP wait policy, so neither engine
/// gets a thread setting the other lacks.
/// </summary>
public sealed class OnnxBody : IDisposable
{
    private readonly InferenceSession _session;

    public OnnxBody(byte[] model, int threads, bool spinning = true)
    {
        using var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
        };
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", spinning ? "1" : "0");
        _session = new InferenceSession(model, options);
        // Exports name the pooled output differently (torch numbers it, e.g. "924" in the MiniLM package): any
        // output besides last_hidden_state is the pooler's.
        HasPooler = _session.OutputMetadata.Keys.Any(n => n != LastHiddenState);
    }

    private const string LastHiddenState = "last_hidden_state";

    public bool HasPooler { get; }

    /// <summary>One timed inference: the outputs stay in ORT's buffers and are released (no copy, like the host's pass).</summary>
    public void Infer(PaddedBatch batch)
    {
        using var results = _session.Run(Inputs(batch));
    }

    /// <summary>Runs a padded batch; returns last_hidden_state [B,T,H] flattened, and the pooler output when there is one.</summary>
    public (float[] Hidden, float[]? Pooled) Run(PaddedBatch batch)
    {
        using var results = _session.Run(Inputs(batch));
        float[]? pooled = null;
        float[] hidden = [];
        foreach (var r in results)
        {
            if (r.Name == LastHiddenState) hidden = r.AsEnumerable<float>().ToArray();
            else pooled = r.AsEnumerable<float>().ToArray();
        }
        return (hidden, pooled);
    }

    private static List<NamedOnnxValue> Inputs(PaddedBatch batch)
    {
        int[] shape = [batch.BatchSize, batch.SequenceLength];
        return new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(batch.InputIds, shape)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(batch.AttentionMask, shape)),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(batch.TokenTypeIds, shape)),
        };
    }

    public void Dispose() => _session.Dispose();
}
