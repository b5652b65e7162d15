using System.Runtime.CompilerServices;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>
/// oneDNN-layout copies of a model's Linear weights (see <see cref="OneDnnLinear"/>), used by
/// <see cref="LinearExtensions.Project"/> for inference passes on the CPU in float32 (and in bfloat16 where oneDNN runs it,
/// see <see cref="OneDnnLinear.SupportsBFloat16"/>). The copies cost as much memory as
/// the Linear weights themselves; they are valid only while the weights do not change, so only a served (frozen) body
/// gets them, and the trainer releases them before it trains a body in place.
/// </summary>
public sealed class PrepackedWeights : IDisposable
{
    private static readonly ConditionalWeakTable<Linear, Packed> Table = new();

    private readonly List<Linear> _linears = [];

    private PrepackedWeights() { }

    /// <summary>Bytes held by the packed copies.</summary>
    public long Bytes { get; private set; }

    /// <summary>
    /// Most rows a projection runs on the packed weights; larger passes keep libtorch's Linear (MKL's sgemm).
    /// <see cref="long.MaxValue"/> when oneDNN kept up at every row count measured.
    /// </summary>
    public long MaxRows { get; private set; }

    /// <summary>The passes the packed weights serve, in words ("any size", "up to 256 rows").</summary>
    public string PassesServed => MaxRows == long.MaxValue ? "any size" : $"up to {MaxRows} rows";

    /// <summary>How <see cref="MaxRows"/> was chosen (the measurement, or "set by the caller").</summary>
    public string RowLimitReason { get; private set; } = "";

    /// <summary>
    /// Packs every Linear of <paramref name="model"/>; null (nothing packed) when the model is not on the CPU in float32
    /// (or bfloat16 with oneDNN support), or
    /// libtorch lacks the kernels — <paramref name="why"/> then says which. Without <paramref name="maxRows"/> the row
    /// limit is measured on this machine (<see cref="PackedRowLimit"/>).
    /// </summary>
    public static PrepackedWeights? Pack(nn.Module model, out string? why, long? maxRows = null)
    {
        var linears = model.modules().OfType<Linear>().Where(l => l.weight is not null && l.bias is not null).ToList();
        why = linears.FirstOrDefault() is { } first ? Unsupported(first.weight!) : null;
        if (why is not null || linears.Count == 0) return null;

        var packs = new PrepackedWeights();
        var weights = linears.Select(l => OneDnnLinear.Reorder(l.weight!)).ToList();
        if (maxRows is { } fixedLimit)
        {
            (packs.MaxRows, packs.RowLimitReason) = (fixedLimit, "set by the caller");
        }
        else
        {
            // The largest weight dominates a pass's GEMM time, so its crossover stands for the model's.
            var largest = Enumerable.Range(0, linears.Count).MaxBy(i => linears[i].weight!.NumberOfElements);
            try
            {
                (packs.MaxRows, packs.RowLimitReason) = PackedRowLimit.Measure(linears[largest], weights[largest]);
            }
            catch
            {
                weights.ForEach(w => w.Dispose());
                throw;
            }
        }
        for (var i = 0; i < linears.Count; i++)
        {
            var linear = linears[i];
            Table.AddOrUpdate(linear, new Packed(weights[i], linear.weight!, packs));
            packs._linears.Add(linear);
            packs.Bytes += linear.weight!.NumberOfElements * linear.weight.ElementSize;
        }
        return packs;
    }

    private static string? Unsupported(Tensor weight)
    {
        if (weight.device_type != TorchSharp.DeviceType.CPU) return "weights are not on the CPU";
        if (OneDnnLinear.Unavailable is { } problem) return problem;
        return weight.dtype switch
        {
            ScalarType.Float32 => null,
            ScalarType.BFloat16 => OneDnnLinear.SupportsBFloat16 ? null : "oneDNN does not run bfloat16 on this CPU (it needs AVX-512)",
            var other => $"{other.ToString().ToLowerInvariant()} weights are not packed (float32 and bfloat16 are)",
        };
    }

    /// <summary>Drops the packed copies of <paramref name="model"/>'s Linears (before its weights change).</summary>
    public static void Release(nn.Module model)
    {
        foreach (var linear in model.modules().OfType<Linear>()) Drop(linear);
    }

    /// <summary>The packed weight to run <paramref name="linear"/> on <paramref name="rows"/> rows with, when this pass may use it.</summary>
    internal static Tensor? For(Linear linear, long rows)
    {
        if (rows == 0 || is_grad_enabled() || !Table.TryGetValue(linear, out var packed) || rows > packed.Owner.MaxRows) return null;
        // A parameter replaced since packing (not updated in place) invalidates the copy.
        return ReferenceEquals(packed.Source, linear.weight) ? packed.Weight : null;
    }

    public void Dispose()
    {
        foreach (var linear in _linears) Drop(linear);
        _linears.Clear();
        Bytes = 0;
    }

    private static void Drop(Linear linear)
    {
        if (Table.TryGetValue(linear, out var packed) && Table.Remove(linear)) packed.Weight.Dispose();
    }

    private sealed record Packed(Tensor Weight, Tensor Source, PrepackedWeights Owner);
}
