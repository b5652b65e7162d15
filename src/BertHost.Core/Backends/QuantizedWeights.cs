using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Text.RegularExpressions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// Dynamic int8 quantization of a model's Linear layers for CPU inference, as PyTorch's
/// <c>torch.ao.nn.quantized.dynamic.Linear</c> does it: each weight is quantized once, per output channel (symmetric
/// int8, scale = max |row| / 127), and packed for fbgemm; at run time each activation row is quantized with its own
/// scale, the product runs in int8 with int32 accumulation (AVX512-VNNI / AVX-VNNI where the CPU has it), and the result
/// is dequantized with the bias added, in float32. Embeddings, LayerNorm, softmax, GELU and the attention core stay in
/// float32.
/// <para>
/// Per row, not per call as PyTorch's dynamic Linear: fbgemm takes one activation scale for the whole input, so a
/// token's int8 values (and a request's answer) would depend on what else is in its batch — the same sentence embedded
/// among different neighbours measured cosine 0.95 at worst. Each row is divided by its largest magnitude before the
/// call and two sentinel rows, [1, 0, …] and [−1, 0, …], are appended, so the range fbgemm sees is always [−1, 1]; the output rows are
/// multiplied back by their row's magnitude and the bias is added here (<see cref="Run"/>).
/// </para>
/// <para>
/// The packed weights live in a TorchScript module of this object (a dictionary attribute keyed by Linear): fbgemm's
/// packed parameters are a TorchScript class TorchSharp cannot hold. Every projection shape is checked at load: the
/// kernel must compute what its quantization defines (see <see cref="Disagreement"/>); a shape whose kernel does not
/// stays float32. What quantization costs in accuracy is measured on real tasks (docs/deployment.md, "Device and precision"), and layers that lose too much
/// can be kept in float32 by name.
/// </para>
/// </summary>
public sealed class QuantizedWeights : IDisposable
{
    private const string ClassName = "DynamicInt8Linear";

    private const string Source = $$"""
        class {{ClassName}}(Module):
          __parameters__ = []
          __buffers__ = []
          training : bool
          packs : Dict[int, __torch__.torch.classes.quantized.LinearPackedParamsBase]
          def forward(self: __torch__.{{ClassName}}, x: Tensor) -> Tensor:
            return x
          def pack(self: __torch__.{{ClassName}}, key: int, weight: Tensor) -> int:
            scales = torch.div(torch.clamp_min(torch.amax(torch.abs(weight), [1]), 1e-12), 127.0)
            zero_points = torch.zeros([weight.size(0)], dtype=4)
            quantized = torch.quantize_per_channel(weight, scales.to(dtype=7), zero_points, 0, 12)
            self.packs[key] = ops.quantized.linear_prepack(quantized, None)
            return key
          def linear(self: __torch__.{{ClassName}}, key: int, x: Tensor) -> Tensor:
            return ops.quantized.linear_dynamic(x, self.packs[key], False)
          def linear_reduced(self: __torch__.{{ClassName}}, key: int, x: Tensor) -> Tensor:
            return ops.quantized.linear_dynamic(x, self.packs[key], True)
          def weight(self: __torch__.{{ClassName}}, key: int) -> Tensor:
            unpacked = ops.quantized.linear_unpack(self.packs[key])
            return torch.dequantize(unpacked[0])
          def drop(self: __torch__.{{ClassName}}, key: int) -> int:
            del self.packs[key]
            return key

        """;

    /// <summary>
    /// Largest relative difference accepted at load between the int8 kernel and the same quantization computed in
    /// float32 (dequantized weights, activations rounded to the kernel's uint8 grid). Rounding ties of the activations
    /// can land one level apart (the kernel multiplies by a float inverse scale), which measured up to 1.3e-3 at
    /// 1536 inputs; a kernel computing wrong products is off by a large fraction of the output.
    /// </summary>
    private const double Tolerance = 1e-2;

    private static readonly long[] CheckedRows = [1, 7, 128];

    private readonly jit.ScriptModule _ops;
    private readonly Dictionary<Linear, long> _keys = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<long, Int8Pack> _packs = [];
    private readonly Dictionary<Linear, FusedProjection> _fused = new(ReferenceEqualityComparer.Instance);
    private readonly bool _reduceRange;

    private QuantizedWeights(jit.ScriptModule ops, bool reduceRange) => (_ops, _reduceRange) = (ops, reduceRange);

    /// <summary>Bytes of the int8 weights (one byte per weight, besides per-channel scales and fbgemm's column offsets).</summary>
    public long Bytes => _packs.Values.Sum(p => p.WeightElements);

    /// <summary>What each projection shape got: <c>int8</c> or <c>float32</c> (excluded, or failed its check), and why.</summary>
    public IReadOnlyList<QuantizedProjectionStatus> Projections { get; private set; } = [];

    /// <summary>
    /// Activations are quantized to 7 bits where the CPU has no VNNI: AVX2's int8 multiply-add saturates at int16, and
    /// fbgemm (like PyTorch's default) keeps a bit of headroom there.
    /// </summary>
    public bool ReducedRange => _reduceRange;

    /// <summary>
    /// Quantizes the Linears of <paramref name="model"/> (float32, on the CPU) except those whose module name matches an
    /// <paramref name="exclude"/> pattern (<c>*</c> matches any run of characters); null with <paramref name="why"/> when
    /// nothing could be quantized (no kernels, or none passed its check).
    /// </summary>
    /// <exception cref="ArgumentException">A pattern matches no Linear (a misspelt name).</exception>
    public static QuantizedWeights? Quantize(nn.Module model, IReadOnlyCollection<string> exclude, out string? why) =>
        Quantize(model, exclude, out why, faults: null);

    /// <param name="fuse">Linears that read the same input (a layer's query, key and value): where all of a group run
    /// in int8 they become one GEMM over their stacked weights, so the input is scaled, quantized and read once instead
    /// of once per Linear (see <see cref="ForFused"/>).</param>
    internal static QuantizedWeights? Quantize(nn.Module model, IReadOnlyCollection<string> exclude, out string? why, FastPathFaults? faults,
        IReadOnlyList<Linear[]>? fuse = null)
    {
        var linears = model.named_modules().Where(m => m.module is Linear { weight: not null, bias: not null })
            .Select(m => (m.name, Linear: (Linear)m.module)).ToList();
        why = linears.Count == 0 ? "the model has no Linear layers" : Unsupported(linears[0].Linear.weight!);
        if (why is not null) return null;
        jit.ScriptModule ops;
        try
        {
            ops = jit.load(TorchScriptArchive.Write(ClassName, Source,
                new Dictionary<string, string> { ["packs"] = "Dict[int, __torch__.torch.classes.quantized.LinearPackedParamsBase]" }));
        }
        catch (Exception e)
        {
            why = "libtorch's quantized kernels are unavailable: " + e.Message.Split('\n')[0];
            return null;
        }

        var patterns = exclude.Select(Glob).ToList();
        if (exclude.Zip(patterns).FirstOrDefault(p => !linears.Any(l => p.Second.IsMatch(l.name))).First is { } unmatched)
        {
            ops.Dispose();
            throw new ArgumentException($"quantize_exclude '{unmatched}' matches no Linear of the model (names look like {linears[0].name})");
        }
        var weights = new QuantizedWeights(ops, reduceRange: !CpuFeatures.Vnni);
        // Each shape is checked on its first Linear; its siblings share the verdict (null: int8 agreed).
        var verdicts = new Dictionary<(long, long), string?>();
        var statuses = new Dictionary<(long, long), QuantizedProjectionStatus>();
        // Linears that run in int8, packed once their groups are settled: a stacked group needs no pack per member.
        var int8 = new List<Linear>();
        using var noGrad = no_grad();
        foreach (var (name, linear) in linears)
        {
            var shape = (linear.in_features, linear.out_features);
            if (!statuses.TryGetValue(shape, out var status))
                status = new QuantizedProjectionStatus($"{linear.in_features}→{linear.out_features}", 0, 0, [], null);
            if (patterns.Any(p => p.IsMatch(name)))
            {
                statuses[shape] = status with { FloatLinears = status.FloatLinears + 1, Excluded = [.. status.Excluded, name] };
                continue;
            }
            if (!verdicts.TryGetValue(shape, out var verdict))
            {
                var key = weights.Pack(linear);
                verdicts[shape] = verdict = weights.Disagreement(linear, key, faults?.Int8 == true);
                if (verdict is not null) weights.Drop(linear);
            }
            if (verdict is null) int8.Add(linear);
            statuses[shape] = verdict is null
                ? status with { Int8Linears = status.Int8Linears + 1 }
                : status with { FloatLinears = status.FloatLinears + 1, Reason = verdict };
        }
        // Stacked shapes are checked apart from single Linears of the same shape.
        var stackedVerdicts = new Dictionary<(long, long), string?>();
        var inInt8 = int8.ToHashSet(ReferenceEqualityComparer.Instance);
        foreach (var group in fuse ?? [])
            if (group.All(inInt8.Contains)) weights.Fuse(group, stackedVerdicts, faults?.Int8Stacked == true);
        weights.StackedReason = stackedVerdicts.Values.FirstOrDefault(v => v is not null);
        foreach (var linear in int8)
            if (!weights.IsQuantized(linear)) weights.Pack(linear);
        weights.Projections = [.. statuses.Values];
        if (weights._packs.Count == 0)
        {
            why = "no Linear was quantized (" + string.Join("; ", weights.Projections.Select(p => $"{p.Shape}: {p.Reason ?? "excluded"}")) + ")";
            weights.Dispose();
            return null;
        }
        return weights;
    }

    private long Pack(Linear linear)
    {
        var key = Pack(linear.weight!, linear.bias!);
        _keys[linear] = key;
        return key;
    }

    private long Pack(Tensor weight, Tensor bias)
    {
        var key = 0L;
        while (_packs.ContainsKey(key)) key++;
        using var dense = weight.contiguous();
        _ops.invoke("pack", key, dense);
        _packs[key] = new Int8Pack(bias.detach().to(ScalarType.Float32).data<float>().ToArray(), weight.NumberOfElements);
        return key;
    }

    private void Drop(Linear linear)
    {
        if (_keys.Remove(linear, out var key)) Drop(key);
    }

    private void Drop(long key)
    {
        _packs.Remove(key);
        _ops.invoke("drop", key);
    }

    /// <summary>
    /// Packs <paramref name="group"/>'s stacked weights (every member runs in int8) as one projection when the stacked
    /// shape passes its check (once per shape, like single Linears); a member packed to check its own shape is dropped.
    /// Per-output-channel weight scales and per-row activation scales make each member's columns of the stacked
    /// product exactly what its own pack computes.
    /// </summary>
    private void Fuse(Linear[] group, Dictionary<(long, long), string?> verdicts, bool fault)
    {
        if (group.Length < 2 || group.Any(l => l.in_features != group[0].in_features)) return;
        using var weight = cat(group.Select(l => l.weight!).ToArray(), 0);
        using var bias = cat(group.Select(l => l.bias!).ToArray(), 0);
        var key = Pack(weight, bias);
        var shape = (group[0].in_features, weight.shape[0]);
        if (!verdicts.TryGetValue(shape, out var verdict))
            verdicts[shape] = verdict = Disagreement(group[0].in_features, bias, key, fault);
        if (verdict is not null)
        {
            Drop(key);
            return;
        }
        var fused = new FusedProjection(key, group);
        foreach (var linear in group)
        {
            Drop(linear);
            _fused[linear] = fused;
        }
    }

    private static Regex Glob(string pattern) =>
        new("^" + Regex.Escape(pattern).Replace("\\*", ".*") + "$", RegexOptions.CultureInvariant);

    private static string? Unsupported(Tensor weight)
    {
        if (weight.device_type != TorchSharp.DeviceType.CPU) return "int8 projections run on the CPU only";
        if (weight.dtype != ScalarType.Float32) return "int8 projections quantize float32 weights (load the body as float32)";
        return null;
    }

    /// <summary>
    /// Null when the int8 kernel computes what its quantization defines — the product of the dequantized weight with
    /// the activations rounded to the uint8 grid the kernel chose, plus the bias, evaluated in float32 (quantization
    /// error itself is measured on real tasks, not here); else how it differs.
    /// </summary>
    private string? Disagreement(Linear linear, long key, bool fault) => Disagreement(linear.in_features, linear.bias!, key, fault);

    private string? Disagreement(long inputs, Tensor bias, long key, bool fault)
    {
        using var generator = new Generator(97);
        using var weight = (Tensor)_ops.invoke("weight", key)!;
        foreach (var rows in CheckedRows)
        {
            using var scope = NewDisposeScope();
            var x = randn([rows, inputs], generator: generator);
            var fast = Run(key, x);
            if (fault) fast = fast.add(1);
            var expected = nn.functional.linear(FakeQuantizeRows(x, _reduceRange ? 127 : 255), weight, bias);
            var difference = FastPathCheck.RelativeDifference(fast, expected);
            if (difference > Tolerance)
                return $"int8 kernel disagreed with its quantization computed in float32 at {rows} rows (relative difference {difference:G3})";
        }
        return null;
    }

    /// <summary>
    /// <paramref name="x"/> [rows, inputs] as <see cref="Run"/> quantizes it, mapped back to float32: each row divided by
    /// its largest magnitude, rounded to the asymmetric grid fbgemm picks for the range [−1, 1] (scale 2 / levels, zero
    /// point levels / 2 rounded to even), and multiplied back.
    /// </summary>
    internal static Tensor FakeQuantizeRows(Tensor x, int levels)
    {
        using var scope = NewDisposeScope();
        var magnitude = x.abs().amax([-1], keepdim: true);
        magnitude = where(magnitude.gt(0), magnitude, ones_like(magnitude));
        var scale = 2.0 / levels;
        var zeroPoint = Math.Round(levels / 2.0, MidpointRounding.ToEven);
        return x.div(magnitude).div(scale).add(zeroPoint).round().clamp(0, levels).sub(zeroPoint).mul(scale).mul(magnitude)
            .MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The int8 projection of <paramref name="linear"/>, when this pass may use it (no gradients). A Linear fused with
    /// others computes the whole stacked product and keeps its own columns: callers that project the group together
    /// use <see cref="ForFused"/>.
    /// </summary>
    internal Func<Tensor, Tensor>? For(Linear linear)
    {
        if (is_grad_enabled()) return null;
        if (_keys.TryGetValue(linear, out var key)) return x => Run(key, x);
        if (!_fused.TryGetValue(linear, out var fused)) return null;
        var (first, count) = fused.Columns(linear);
        return x =>
        {
            using var all = Run(fused.Key, x);
            using var mine = all.narrow(-1, first, count);
            return mine.contiguous();
        };
    }

    /// <summary>
    /// The stacked int8 projection of <paramref name="group"/> (the Linears in the order they were fused), when they were
    /// fused and this pass may use it: [rows, Σ outputs], each Linear's columns in turn.
    /// </summary>
    internal Func<Tensor, Tensor>? ForFused(IReadOnlyList<Linear> group) =>
        !is_grad_enabled() && group.Count > 0 && _fused.TryGetValue(group[0], out var fused) && fused.Members.SequenceEqual(group)
            ? x => Run(fused.Key, x) : null;

    /// <summary>
    /// Frees the float32 weight of every Linear that runs in int8 (after the load-time checks, which need it): a served
    /// int8 body would otherwise hold both copies (MiniLM: 85 MB of float32 beside 21 MB of int8). The module keeps an
    /// empty weight; nothing reads it again: passes go through the int8 kernel, and training or pre-training from the
    /// served body loads its own float32 copy from the model folder.
    /// </summary>
    public void ReleaseFloatWeights()
    {
        foreach (var linear in _keys.Keys.Concat(_fused.Keys))
        {
            var weight = linear.weight!;
            if (weight.NumberOfElements == 0) continue;
            linear.weight = new TorchSharp.Modules.Parameter(empty(0, weight.dtype), requires_grad: false);
            weight.Dispose();
        }
    }

    /// <summary>Whether <paramref name="linear"/> runs in int8.</summary>
    public bool IsQuantized(Linear linear) => _keys.ContainsKey(linear) || _fused.ContainsKey(linear);

    /// <summary>Why groups stayed separate int8 GEMMs: their stacked shape failed its load-time check (null: none did).</summary>
    public string? StackedReason { get; private set; }

    /// <summary>How many groups of Linears run as one stacked int8 GEMM.</summary>
    public int FusedGroups => _fused.Values.Distinct().Count();

    /// <summary>Rows per work item when the row scaling is split over libtorch's OpenMP team.</summary>
    private const int Chunk = 64;

    /// <summary>Rows appended to every call, [1, 0, …] and [−1, 0, …]: they pin fbgemm's activation range to [−1, 1].</summary>
    private const int SentinelRows = 2;

    private unsafe Tensor Run(long key, Tensor x)
    {
        var inputs = (int)x.shape[^1];
        var rows = (int)(x.NumberOfElements / inputs);
        // contiguous() returns a new handle even where it aliases x: dispose it now rather than leave it to a scope.
        using var input = x.contiguous();
        using var scaled = empty([rows + SentinelRows, inputs], ScalarType.Float32);
        var magnitudes = new float[rows];
        float* source = TensorMemory.Floats(input), target = TensorMemory.Floats(scaled);
        OpenMpTeam.ForRows(0, rows, Chunk, (from, to) =>
        {
            for (var r = from; r < to; r++)
            {
                var row = new ReadOnlySpan<float>(source + (long)r * inputs, inputs);
                var magnitude = MathF.Abs(TensorPrimitives.MaxMagnitude(row));
                // A zero row stays zero; a non-finite one gives non-finite outputs whatever the scale.
                if (!(magnitude > 0) || float.IsInfinity(magnitude)) magnitude = 1;
                magnitudes[r] = magnitude;
                TensorPrimitives.Divide(row, magnitude, new Span<float>(target + (long)r * inputs, inputs));
            }
        });
        var sentinels = new Span<float>(target + (long)rows * inputs, SentinelRows * inputs);
        sentinels.Clear();
        sentinels[0] = 1;
        sentinels[inputs] = -1;

        using var output = (Tensor)_ops.invoke(_reduceRange ? "linear_reduced" : "linear", key, scaled)!;
        var outputs = (int)output.shape[1];
        var bias = _packs[key].Bias;
        var result = TensorMemory.Floats(output);
        OpenMpTeam.ForRows(0, rows, Chunk, (from, to) =>
        {
            for (var r = from; r < to; r++)
            {
                var row = new Span<float>(result + (long)r * outputs, outputs);
                TensorPrimitives.MultiplyAdd(row, magnitudes[r], bias, row);
            }
        });
        using var kept = output.narrow(0, 0, rows);
        return kept.reshape([.. x.shape[..^1], outputs]);
    }

    public void Dispose()
    {
        _keys.Clear();
        _fused.Clear();
        _packs.Clear();
        _ops.Dispose();
    }
}

/// <summary>One fbgemm pack: the bias its epilogue adds (packs carry none) and how many int8 weights it holds.</summary>
internal sealed record Int8Pack(float[] Bias, long WeightElements);

/// <summary>Linears packed as one stacked int8 weight under <paramref name="Key"/>, their outputs side by side in member order.</summary>
internal sealed record FusedProjection(long Key, Linear[] Members)
{
    /// <summary>The first column and the width of <paramref name="linear"/>'s outputs in the stacked product.</summary>
    public (long First, long Count) Columns(Linear linear)
    {
        var first = 0L;
        foreach (var member in Members)
        {
            if (ReferenceEquals(member, linear)) return (first, member.out_features);
            first += member.out_features;
        }
        throw new ArgumentException("not a member of this fused projection", nameof(linear));
    }
}

/// <summary>
/// What one projection shape got in a quantized body: how many of its Linears run in int8 and how many stay float32,
/// which were excluded by name, and why any stayed float32.
/// </summary>
public sealed record QuantizedProjectionStatus(string Shape, int Int8Linears, int FloatLinears, IReadOnlyList<string> Excluded, string? Reason);
