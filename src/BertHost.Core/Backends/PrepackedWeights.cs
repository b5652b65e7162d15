using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// oneDNN-layout copies of a model's Linear weights (see <see cref="OneDnnLinear"/>), used by the model's projections
/// (<see cref="For"/>) for inference passes on the CPU in float32 (and in bfloat16 where oneDNN runs it,
/// see <see cref="OneDnnLinear.SupportsBFloat16"/>). The copies cost as much memory as
/// the Linear weights themselves; they are valid only while the weights do not change, so only a served (frozen) body
/// gets them, and the body drops them (<see cref="Dispose"/>) before a trainer changes its weights in place.
/// <para>
/// Every projection shape is checked once when it is packed: its packed form runs on random inputs of several row
/// counts (with each activation the model fuses into it) and must agree with libtorch's Linear. A shape whose blocked
/// layout disagrees tries the padded layout (<see cref="PackedProjection"/>); if that disagrees too, its Linears stay
/// unpacked. <see cref="Projections"/> says what each shape got and why.
/// </para>
/// </summary>
public sealed class PrepackedWeights : IDisposable
{
    private readonly Dictionary<Linear, Packed> _packed = new(ReferenceEqualityComparer.Instance);

    /// <summary>Row counts the load-time check runs: one token, an odd count, the layout's hint and past it.</summary>
    private static readonly long[] CheckedRows = [1, 7, 128, 131];

    /// <summary>The start of the reason given when no projection shape passed its load-time check.</summary>
    internal const string DisagreedEverywhere = "oneDNN's packed kernels disagreed with libtorch's Linear for every projection shape";

    private PrepackedWeights() { }

    /// <summary>Bytes of the Linear weights that have packed copies (a padded copy holds a few more).</summary>
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

    /// <summary>What the load-time check decided for each distinct projection shape, in model order.</summary>
    public IReadOnlyList<PackedProjectionStatus> Projections { get; private set; } = [];

    /// <summary>
    /// Packs every Linear of <paramref name="model"/>; null (nothing packed) when the model is not on the CPU in float32
    /// (or bfloat16 with oneDNN support), libtorch lacks the kernels, or no projection shape passed its check —
    /// <paramref name="why"/> then says which. Without <paramref name="maxRows"/> the row limit is measured on this
    /// machine (<see cref="PackedRowLimit"/>).
    /// </summary>
    /// <param name="epilogues">Activations the model fuses into its projections (<see cref="OneDnnLinear.Epilogues"/>),
    /// each with libtorch's own form of it to check the fused kernel against; null: none.</param>
    public static PrepackedWeights? Pack(nn.Module model, out string? why, long? maxRows = null, IReadOnlyDictionary<string, Func<Tensor, Tensor>>? epilogues = null) =>
        Pack(model, out why, maxRows, epilogues, faults: null);

    internal static PrepackedWeights? Pack(nn.Module model, out string? why, long? maxRows, IReadOnlyDictionary<string, Func<Tensor, Tensor>>? epilogues,
        FastPathFaults? faults, Func<Linear, bool>? include = null)
    {
        var linears = model.modules().OfType<Linear>().Where(l => l.weight is not null && l.bias is not null && (include?.Invoke(l) ?? true)).ToList();
        why = linears.FirstOrDefault() is { } first ? Unsupported(first.weight!) : "no Linear left to pack";
        if (why is not null) return null;

        var packs = new PrepackedWeights();
        var projections = new List<PackedProjection?>(linears.Count);
        try
        {
            var checkedRows = CheckedRows.Where(r => r <= (maxRows ?? long.MaxValue)).ToArray();
            var statuses = new Dictionary<ShapeKey, PackedProjectionStatus>();
            foreach (var linear in linears)
            {
                var key = new ShapeKey(linear.in_features, linear.out_features, linear.weight!.dtype);
                if (!statuses.TryGetValue(key, out var status))
                {
                    // The first Linear of a shape is checked with its own packed weight; its siblings share the verdict.
                    var (chosen, verdict) = ChooseLayout(linear, checkedRows, epilogues ?? new Dictionary<string, Func<Tensor, Tensor>>(), faults);
                    projections.Add(chosen);
                    statuses[key] = verdict;
                    continue;
                }
                statuses[key] = status with { Linears = status.Linears + 1 };
                projections.Add(status.Layout == PackedLayouts.Unpacked ? null : PackedProjection.Create(linear, status.Layout));
            }
            packs.Projections = [.. statuses.Values];

            var packed = Enumerable.Range(0, linears.Count).Where(i => projections[i] is not null).ToList();
            if (packed.Count == 0)
            {
                why = DisagreedEverywhere + " (" +
                      string.Join("; ", packs.Projections.Select(p => $"{p.Shape}: {p.Reason}")) + ")";
                return null;
            }
            if (maxRows is { } fixedLimit)
            {
                (packs.MaxRows, packs.RowLimitReason) = (fixedLimit, "set by the caller");
            }
            else
            {
                // The largest weight dominates a pass's GEMM time, so its crossover stands for the model's.
                var largest = packed.MaxBy(i => linears[i].weight!.NumberOfElements);
                (packs.MaxRows, packs.RowLimitReason) = PackedRowLimit.Measure(linears[largest], projections[largest]!);
            }
        }
        catch
        {
            projections.ForEach(p => p?.Dispose());
            throw;
        }
        for (var i = 0; i < linears.Count; i++)
        {
            if (projections[i] is not { } projection) continue;
            var linear = linears[i];
            packs._packed[linear] = new Packed(projection, linear.weight!, linear.bias!);
            packs.Bytes += linear.weight!.NumberOfElements * linear.weight.ElementSize;
        }
        return packs;
    }

    /// <summary>Blocked if it agrees with libtorch's Linear, else padded if that does, else unpacked.</summary>
    private static (PackedProjection?, PackedProjectionStatus) ChooseLayout(Linear linear, long[] rows, IReadOnlyDictionary<string, Func<Tensor, Tensor>> epilogues, FastPathFaults? faults)
    {
        var shape = $"{linear.in_features}→{linear.out_features}";
        var dtype = linear.weight!.dtype.ToString().ToLowerInvariant();
        var failures = new List<string>();
        foreach (var layout in new[] { PackedLayouts.Blocked, PackedLayouts.Padded })
        {
            var projection = PackedProjection.Create(linear, layout);
            var problem = Disagreement(linear, projection, rows, epilogues, faults?.PackedLayouts.Contains(layout) == true);
            if (problem is null)
                return (projection, new PackedProjectionStatus(shape, dtype, 1, layout, failures.Count == 0 ? null : string.Join("; ", failures)));
            projection.Dispose();
            failures.Add($"{layout} layout {problem}");
        }
        return (null, new PackedProjectionStatus(shape, dtype, 1, PackedLayouts.Unpacked, string.Join("; ", failures)));
    }

    /// <summary>Null when the packed projection agrees with libtorch's Linear (then the activation); else how it differs.</summary>
    private static string? Disagreement(Linear linear, PackedProjection projection, long[] rows, IReadOnlyDictionary<string, Func<Tensor, Tensor>> epilogues, bool fault)
    {
        using var noGrad = no_grad();
        var dtype = linear.weight!.dtype;
        using var generator = new Generator(1234);
        foreach (var n in rows)
        {
            using var scope = NewDisposeScope();
            var x = randn([n, linear.in_features], generator: generator).to(dtype);
            var plain = linear.call(x);
            foreach (var epilogue in epilogues.Keys.Prepend(null))
            {
                var fast = projection.Run(x, epilogue);
                if (fault) fast = fast.add(1);
                var expected = epilogue is null ? plain : epilogues[epilogue](plain);
                var difference = FastPathCheck.RelativeDifference(fast, expected);
                if (difference > FastPathCheck.Tolerance(dtype))
                    return $"disagreed with libtorch's Linear{(epilogue is null ? "" : " + " + epilogue)} at {n} rows (relative difference {difference:G3})";
            }
        }
        return null;
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

    /// <summary>The packed projection to run <paramref name="linear"/> on <paramref name="rows"/> rows with, when this pass may use it.</summary>
    internal PackedProjection? For(Linear linear, long rows)
    {
        if (rows == 0 || rows > MaxRows || is_grad_enabled() || !_packed.TryGetValue(linear, out var packed)) return null;
        // A parameter replaced since packing (not updated in place) invalidates the copy.
        return ReferenceEquals(packed.Weight, linear.weight) && ReferenceEquals(packed.Bias, linear.bias) ? packed.Projection : null;
    }

    public void Dispose()
    {
        foreach (var packed in _packed.Values) packed.Projection.Dispose();
        _packed.Clear();
        Bytes = 0;
    }

    private readonly record struct ShapeKey(long In, long Out, ScalarType DType);

    private sealed record Packed(PackedProjection Projection, Tensor Weight, Tensor Bias);
}

/// <summary>
/// What the load-time check decided for one projection shape: <see cref="Layout"/> is one of <see cref="PackedLayouts"/>;
/// <see cref="Reason"/> says why a layout other than blocked serves it (null when blocked passed).
/// </summary>
public sealed record PackedProjectionStatus(string Shape, string DType, int Linears, string Layout, string? Reason);
