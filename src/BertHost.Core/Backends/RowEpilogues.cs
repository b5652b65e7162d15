using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// Work done on each output row of an int8 projection while the row is still in cache, right after its dequantization
/// (row · magnitude + bias; see <see cref="QuantizedWeights"/>), instead of as separate libtorch operators over the
/// whole output: each of those is a dispatch, an allocation and a pass over memory, on every layer of every pass.
/// </summary>
internal abstract unsafe class RowEpilogue
{
    /// <summary>Finishes output row <paramref name="r"/> (<paramref name="row"/>, its values) in place.</summary>
    public abstract void Apply(Span<float> row, int r);
}

/// <summary>
/// BERT's residual block after its output projection: LayerNorm(row + residual row) with the LayerNorm's weight and
/// bias (transformers' <c>BertSelfOutput</c> and <c>BertOutput</c> in eval mode, where dropout is the identity). The
/// mean and the biased variance are those of libtorch's LayerNorm; they are summed in another order, so results agree
/// to float rounding, not bit for bit (the load-time check in <see cref="RowEpilogueCheck"/> bounds the difference).
/// </summary>
internal sealed unsafe class ResidualLayerNormRows(float* residual, float* weight, float* bias, int width, float epsilon) : RowEpilogue
{
    public override void Apply(Span<float> row, int r)
    {
        TensorPrimitives.Add(row, new ReadOnlySpan<float>(residual + (long)r * width, width), row);
        var mean = TensorPrimitives.Sum<float>(row) / width;
        TensorPrimitives.Subtract(row, mean, row);
        var variance = TensorPrimitives.SumOfSquares<float>(row) / width;
        TensorPrimitives.Multiply(row, 1 / MathF.Sqrt(variance + epsilon), row);
        TensorPrimitives.MultiplyAdd(row, new ReadOnlySpan<float>(weight, width), new ReadOnlySpan<float>(bias, width), row);
    }
}

/// <summary>The load-time check of the row epilogues against the libtorch operators they replace, on this machine.</summary>
internal static class RowEpilogueCheck
{
    /// <summary>
    /// How the residual LayerNorm epilogue differs from libtorch's <c>layer_norm(x + residual)</c> over rows of
    /// <paramref name="width"/> (null when it agrees within <see cref="FastPathCheck.Float32Tolerance"/>).
    /// </summary>
    public static unsafe string? Disagreement(int width, double epsilon, bool fault)
    {
        using var generator = new Generator(211);
        foreach (var rows in (int[])[1, 7, 64])
        {
            using var scope = NewDisposeScope();
            // Rows with an offset and a spread, as hidden states have, and a LayerNorm that is not the identity.
            var x = randn([rows, width], generator: generator).mul_(3).add_(0.5);
            var residual = randn([rows, width], generator: generator);
            var weight = randn([width], generator: generator).mul_(0.3).add_(1);
            var bias = randn([width], generator: generator).mul_(0.1);
            var expected = nn.functional.layer_norm(x.add(residual), [width], weight, bias, epsilon);
            var actual = x.clone();
            var epilogue = new ResidualLayerNormRows(TensorMemory.Floats(residual), TensorMemory.Floats(weight), TensorMemory.Floats(bias), width, (float)epsilon);
            var values = TensorMemory.Floats(actual);
            for (var r = 0; r < rows; r++) epilogue.Apply(new Span<float>(values + (long)r * width, width), r);
            if (fault) actual.add_(1);
            var difference = FastPathCheck.RelativeDifference(actual, expected);
            if (difference > FastPathCheck.Float32Tolerance)
                return $"residual LayerNorm row epilogue disagreed with libtorch's add and layer_norm at {rows} rows of {width} (relative difference {difference:G3})";
        }
        return null;
    }
}
