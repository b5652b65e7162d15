using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// Dynamic int8 quantization of a model's Linear layers for CPU inference, as PyTorch's
/// <c>torch.ao.nn.quantized.dynamic.Linear</c> does it: each weight is quantized once, per output channel (symmetric
/// int8, scale = max |row| / 127), and packed; at run time each activation row is quantized with its own scale, the
/// product runs in int8 with int32 accumulation (AVX512-VNNI / AVX-VNNI where the CPU has it), and the result is
/// dequantized with the bias added, in float32. Embeddings, LayerNorm, softmax, GELU and the attention core stay in
/// float32.
/// <para>
/// Per row, not per call as PyTorch's dynamic Linear: one activation scale for the whole input would make a token's
/// int8 values (and a request's answer) depend on what else is in its batch — the same sentence embedded among
/// different neighbours measured cosine 0.95 at worst. Every row is put on the grid of [−1, 1] after division by its
/// largest magnitude, and its outputs are multiplied back by that magnitude before the bias is added.
/// </para>
/// <para>
/// Two GEMMs (<see cref="Int8Kernel"/>). Where the CPU has VNNI, oneDNN's (<c>onednn::qlinear_pointwise</c>) takes the
/// rows as this class quantizes them (<see cref="Int8Rows"/>, one pass); measured 1.3–1.5× fbgemm's path at 128–1,024
/// rows of MiniLM's shapes. fbgemm's (<c>quantized::linear_dynamic</c>) quantizes its input itself with one scale per
/// call, so rows are divided by their magnitude first and two sentinel rows, [1, 0, …] and [−1, 0, …], are appended:
/// the range fbgemm sees is always [−1, 1]. Without VNNI fbgemm keeps 7-bit activations (see <see cref="ReducedRange"/>).
/// </para>
/// <para>
/// fbgemm's packed weights live in a TorchScript module of this object (a dictionary attribute keyed by pack): they
/// are a TorchScript class TorchSharp cannot hold; oneDNN's are tensors. Every projection shape is checked at load on
/// each kernel in turn: the kernel must compute what its quantization defines (see <see cref="Disagreement"/>); the
/// first that agrees serves the shape, and a shape no kernel computes right stays float32. What quantization costs in
/// accuracy is measured on real tasks (docs/deployment.md, "Device and precision"), and layers that lose too much can
/// be kept in float32 by name.
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
          def weight_scales(self: __torch__.{{ClassName}}, weight: Tensor) -> Tensor:
            return torch.div(torch.clamp_min(torch.amax(torch.abs(weight), [1]), 1e-12), 127.0)
          def int8_weight(self: __torch__.{{ClassName}}, weight: Tensor) -> Tensor:
            inverse = torch.unsqueeze(torch.reciprocal(self.weight_scales(weight)), 1)
            return torch.clamp(torch.round(torch.mul(weight, inverse)), -128, 127).to(dtype=1)
          def quantized_weight(self: __torch__.{{ClassName}}, weight: Tensor) -> Tensor:
            zero_points = torch.zeros([weight.size(0)], dtype=4)
            return torch._make_per_channel_quantized_tensor(self.int8_weight(weight), self.weight_scales(weight).to(dtype=7), zero_points, 0)
          def dequantized_weight(self: __torch__.{{ClassName}}, weight: Tensor) -> Tensor:
            return torch.dequantize(self.quantized_weight(weight))
          def pack(self: __torch__.{{ClassName}}, key: int, weight: Tensor) -> int:
            self.packs[key] = ops.quantized.linear_prepack(self.quantized_weight(weight), None)
            return key
          def linear(self: __torch__.{{ClassName}}, key: int, x: Tensor) -> Tensor:
            return ops.quantized.linear_dynamic(x, self.packs[key], False)
          def linear_reduced(self: __torch__.{{ClassName}}, key: int, x: Tensor) -> Tensor:
            return ops.quantized.linear_dynamic(x, self.packs[key], True)
          def pack_onednn(self: __torch__.{{ClassName}}, weight: Tensor) -> Tensor:
            return ops.onednn.qlinear_prepack(self.int8_weight(weight), None)
          def linear_onednn(self: __torch__.{{ClassName}}, x: Tensor, x_scale: float, x_zero_point: int, packed: Tensor, scales: Tensor, zero_points: Tensor) -> Tensor:
            return ops.onednn.qlinear_pointwise(x, x_scale, x_zero_point, packed, scales, zero_points, None, 1.0, 0, 6, "none", annotate(List[Optional[number]], []), "")
          def drop(self: __torch__.{{ClassName}}, key: int) -> int:
            del self.packs[key]
            return key

        """;

    /// <summary>
    /// Largest relative difference accepted at load between an int8 kernel and the same quantization computed in
    /// float32 (dequantized weights, activations rounded to the kernel's uint8 grid). Rounding ties of the activations
    /// can land one level apart (a kernel multiplies by a float inverse scale), which measured up to 1.3e-3 at 1536
    /// inputs; a kernel computing wrong products is off by a large fraction of the output.
    /// </summary>
    private const double Tolerance = 1e-2;

    private static readonly long[] CheckedRows = [1, 7, 128];

    private readonly jit.ScriptModule _ops;
    private readonly IReadOnlyList<Int8Kernel> _kernels;
    private readonly Dictionary<Linear, long> _keys = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<long, Int8Pack> _packs = [];
    private readonly Dictionary<Linear, FusedProjection> _fused = new(ReferenceEqualityComparer.Instance);
    private readonly bool _reduceRange;

    private QuantizedWeights(jit.ScriptModule ops, IReadOnlyList<Int8Kernel> kernels, bool reduceRange) =>
        (_ops, _kernels, _reduceRange) = (ops, kernels, reduceRange);

    /// <summary>The kernels a body tries, in order: oneDNN first where the CPU has VNNI (without it oneDNN's int8
    /// products saturate at int16), then fbgemm.</summary>
    internal static IReadOnlyList<Int8Kernel> DefaultKernels => CpuFeatures.Vnni ? [Int8Kernel.OneDnn, Int8Kernel.Fbgemm] : [Int8Kernel.Fbgemm];

    /// <summary>Bytes of the int8 weights (one byte per weight, besides per-channel scales and column offsets).</summary>
    public long Bytes => _packs.Values.Sum(p => p.WeightElements);

    /// <summary>What each projection shape got: <c>int8</c> on a kernel, or <c>float32</c> (excluded, or no kernel passed its check), and why.</summary>
    public IReadOnlyList<QuantizedProjectionStatus> Projections { get; private set; } = [];

    /// <summary>
    /// fbgemm quantizes activations to 7 bits where the CPU has no VNNI: AVX2's int8 multiply-add saturates at int16,
    /// and fbgemm (like PyTorch's default) keeps a bit of headroom there.
    /// </summary>
    public bool ReducedRange => _reduceRange && _packs.Values.Any(p => p.Kernel == Int8Kernel.Fbgemm);

    /// <summary>
    /// Quantizes the Linears of <paramref name="model"/> (float32, on the CPU) except those whose module name matches an
    /// <paramref name="exclude"/> pattern (<c>*</c> matches any run of characters); null with <paramref name="why"/> when
    /// nothing could be quantized (no kernels, or none passed its check).
    /// </summary>
    /// <exception cref="ArgumentException">A pattern matches no Linear (a misspelt name).</exception>
    public static QuantizedWeights? Quantize(nn.Module model, IReadOnlyCollection<string> exclude, out string? why) =>
        Quantize(model, exclude, out why, faults: null);

    /// <param name="fuse">Linears that read the same input (a layer's query, key and value): where all of a group run
    /// in int8 they become one GEMM over their stacked weights, so the input is quantized and read once instead of once
    /// per Linear (see <see cref="ForFused"/>).</param>
    /// <param name="kernels">The GEMMs to try on each shape, in order (default <see cref="DefaultKernels"/>).</param>
    internal static QuantizedWeights? Quantize(nn.Module model, IReadOnlyCollection<string> exclude, out string? why, FastPathFaults? faults,
        IReadOnlyList<Linear[]>? fuse = null, IReadOnlyList<Int8Kernel>? kernels = null)
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
        var weights = new QuantizedWeights(ops, kernels ?? DefaultKernels, reduceRange: !CpuFeatures.Vnni);
        // Each shape is checked once, on its first Linear; its siblings share the verdict.
        var verdicts = new Dictionary<(long, long), KernelVerdict>();
        var statuses = new Dictionary<(long, long), QuantizedProjectionStatus>();
        // Linears that run in int8 and their kernel, packed once their groups are settled: a stacked group needs no pack per member.
        var int8 = new Dictionary<Linear, Int8Kernel>(ReferenceEqualityComparer.Instance);
        // The pack each shape's check made of its first Linear: that Linear keeps it unless it joins a stacked group.
        var probes = new Dictionary<Linear, long>(ReferenceEqualityComparer.Instance);
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
                verdicts[shape] = verdict = weights.Settle(linear.weight!, linear.bias!, faults, stacked: false, out var probe);
                if (probe is { } key) probes[linear] = key;
            }
            if (verdict.Kernel is { } kernel) int8[linear] = kernel;
            statuses[shape] = verdict.Kernel is not null
                ? status with { Int8Linears = status.Int8Linears + 1, Kernel = verdict.Kernel, Reason = verdict.Reason }
                : status with { FloatLinears = status.FloatLinears + 1, Reason = verdict.Reason };
        }
        // Stacked shapes are checked apart from single Linears of the same shape.
        var stackedVerdicts = new Dictionary<(long, long), KernelVerdict>();
        foreach (var group in fuse ?? [])
            if (group.All(int8.ContainsKey)) weights.Fuse(group, stackedVerdicts, faults);
        weights.StackedReason = stackedVerdicts.Values.Select(v => v.Kernel is null ? v.Reason : null).FirstOrDefault(r => r is not null);
        weights.StackedFallback = stackedVerdicts.Values.FirstOrDefault(v => v is { Kernel: not null, Reason: not null }) is { } fallback
            ? $"{Name(fallback.Kernel!.Value)}: {fallback.Reason}" : null;
        foreach (var (linear, kernel) in int8)
        {
            var hasProbe = probes.TryGetValue(linear, out var probe);
            if (weights.IsQuantized(linear))
            {
                if (hasProbe) weights.Drop(probe);
                continue;
            }
            weights._keys[linear] = hasProbe ? probe : weights.Pack(linear.weight!, linear.bias!, kernel);
        }
        weights.Projections = [.. statuses.Values];
        if (weights._packs.Count == 0)
        {
            why = "no Linear was quantized (" + string.Join("; ", weights.Projections.Select(p => $"{p.Shape}: {p.Reason ?? "excluded"}")) + ")";
            weights.Dispose();
            return null;
        }
        return weights;
    }

    /// <summary>Which kernel serves a shape (null: none agreed) and why the ones tried before it, if any, did not.</summary>
    private sealed record KernelVerdict(Int8Kernel? Kernel, string? Reason);

    /// <summary>
    /// The first of the kernels whose product of <paramref name="weight"/> agrees with its quantization computed in
    /// float32; <paramref name="probe"/> is the agreeing pack, the caller's to keep or drop (the others are dropped here).
    /// </summary>
    private KernelVerdict Settle(Tensor weight, Tensor bias, FastPathFaults? faults, bool stacked, out long? probe)
    {
        probe = null;
        var problems = new List<string>();
        foreach (var kernel in _kernels)
        {
            var fault = faults is not null && (faults.Int8 || (stacked && faults.Int8Stacked) || (kernel == Int8Kernel.OneDnn && faults.Int8OneDnn));
            long? key = null;
            string? problem;
            var agreed = false;
            try
            {
                key = Pack(weight, bias, kernel);
                problem = Disagreement(weight, bias, key.Value, fault, stacked);
                agreed = problem is null;
            }
            catch (ExternalException e)
            {
                // libtorch refused the operator here (a build without it, an unsupported shape): the next kernel is tried.
                problem = $"{(stacked ? "stacked " : "")}{Name(kernel)} int8 kernel failed: {e.Message.Split('\n')[0]}";
            }
            finally
            {
                if (!agreed && key is { } packed) Drop(packed);
            }
            if (agreed)
            {
                probe = key;
                return new KernelVerdict(kernel, problems.Count == 0 ? null : string.Join("; ", problems));
            }
            problems.Add(problem!);
        }
        return new KernelVerdict(null, string.Join("; ", problems));
    }

    internal static string Name(Int8Kernel kernel) => kernel == Int8Kernel.OneDnn ? "oneDNN" : "fbgemm";

    private long Pack(Tensor weight, Tensor bias, Int8Kernel kernel)
    {
        var key = 0L;
        while (_packs.ContainsKey(key)) key++;
        using var dense = weight.contiguous();
        var biasValues = bias.detach().to(ScalarType.Float32).data<float>().ToArray();
        if (kernel == Int8Kernel.Fbgemm)
        {
            _ops.invoke("pack", key, dense);
            _packs[key] = new Int8Pack(biasValues, weight.NumberOfElements, kernel);
            return key;
        }
        var packed = ((Tensor)_ops.invoke("pack_onednn", dense)!).DetachFromDisposeScope();
        var scales = ((Tensor)_ops.invoke("weight_scales", dense)!).DetachFromDisposeScope();
        var zeroPoints = zeros([weight.shape[0]], ScalarType.Int32).DetachFromDisposeScope();
        _packs[key] = new Int8Pack(biasValues, weight.NumberOfElements, kernel, packed, scales, zeroPoints);
        return key;
    }

    private void Drop(long key)
    {
        if (!_packs.Remove(key, out var pack)) return;
        if (pack.Kernel == Int8Kernel.Fbgemm) _ops.invoke("drop", key);
        pack.Dispose();
    }

    /// <summary>
    /// Packs <paramref name="group"/>'s stacked weights (every member runs in int8) as one projection on the first
    /// kernel whose check the stacked shape passes (once per shape, like single Linears). Per-output-channel weight
    /// scales and per-row activation scales make each member's columns of the stacked product exactly what its own
    /// pack on the same kernel computes.
    /// </summary>
    private void Fuse(Linear[] group, Dictionary<(long, long), KernelVerdict> verdicts, FastPathFaults? faults)
    {
        if (group.Length < 2 || group.Any(l => l.in_features != group[0].in_features)) return;
        using var weight = cat(group.Select(l => l.weight!).ToArray(), 0);
        using var bias = cat(group.Select(l => l.bias!).ToArray(), 0);
        var shape = (group[0].in_features, weight.shape[0]);
        long? probe = null;
        if (!verdicts.TryGetValue(shape, out var verdict))
            verdicts[shape] = verdict = Settle(weight, bias, faults, stacked: true, out probe);
        if (verdict.Kernel is not { } kernel) return;
        var fused = new FusedProjection(probe ?? Pack(weight, bias, kernel), group);
        foreach (var linear in group) _fused[linear] = fused;
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
    /// Null when pack <paramref name="key"/>'s kernel computes what its quantization defines — the product of the
    /// dequantized <paramref name="weight"/> with the activations rounded to the uint8 grid the kernel uses, plus the
    /// bias, evaluated in float32 (quantization error itself is measured on real tasks, not here); else how it differs.
    /// </summary>
    private string? Disagreement(Tensor weight, Tensor bias, long key, bool fault, bool stacked)
    {
        using var generator = new Generator(97);
        using var dense = weight.contiguous();
        using var dequantized = (Tensor)_ops.invoke("dequantized_weight", dense)!;
        var levels = _packs[key].Kernel == Int8Kernel.Fbgemm && _reduceRange ? 127 : 255;
        foreach (var rows in CheckedRows)
        {
            using var scope = NewDisposeScope();
            var x = randn([rows, weight.shape[1]], generator: generator);
            var fast = Run(key, x);
            if (fault) fast = fast.add(1);
            var expected = nn.functional.linear(FakeQuantizeRows(x, levels), dequantized, bias);
            var difference = FastPathCheck.RelativeDifference(fast, expected);
            if (difference > Tolerance)
                return $"{(stacked ? "stacked " : "")}{Name(_packs[key].Kernel)} int8 kernel disagreed with its quantization computed in float32 at {rows} rows (relative difference {difference:G3})";
        }
        return null;
    }

    /// <summary>
    /// <paramref name="x"/> [rows, inputs] as the kernels quantize it, mapped back to float32: each row divided by its
    /// largest magnitude, rounded to the asymmetric grid of [−1, 1] with <paramref name="levels"/> steps (scale 2 / levels,
    /// zero point levels / 2 rounded to even), and multiplied back.
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
    /// <paramref name="weight"/> on its int8 grid, as both kernels store it: per output row, scale = max |row| / 127 and
    /// value = round(w · (1 / scale)), ties to even — what libtorch's <c>quantize_per_channel</c> computes, in vector
    /// operations instead of its element-by-element loop (~60 ms of a MiniLM load).
    /// </summary>
    internal Tensor Int8Weight(Tensor weight) => (Tensor)_ops.invoke("int8_weight", weight.contiguous())!;

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

    /// <summary>The GEMM <paramref name="linear"/> runs on (null: float32).</summary>
    internal Int8Kernel? KernelOf(Linear linear) =>
        _keys.TryGetValue(linear, out var key) ? _packs[key].Kernel : _fused.TryGetValue(linear, out var fused) ? _packs[fused.Key].Kernel : null;

    /// <summary>Why groups stayed separate int8 GEMMs: their stacked shape failed its load-time check (null: none did).</summary>
    public string? StackedReason { get; private set; }

    /// <summary>The kernel stacked groups run on when it is not the first one tried, and why (null otherwise).</summary>
    public string? StackedFallback { get; private set; }

    /// <summary>The GEMM stacked groups run on: <c>onednn</c>, <c>fbgemm</c>, or null when none is stacked.</summary>
    public string? StackedKernelName => WireName(_fused.Values.FirstOrDefault() is { } fused ? _packs[fused.Key].Kernel : null);

    /// <summary>A kernel's name as <c>GET /v1/body</c> reports it: <c>onednn</c>, <c>fbgemm</c>, or null for none.</summary>
    internal static string? WireName(Int8Kernel? kernel) => kernel switch
    {
        Int8Kernel.OneDnn => "onednn",
        Int8Kernel.Fbgemm => "fbgemm",
        _ => null,
    };

    /// <summary>How many groups of Linears run as one stacked int8 GEMM.</summary>
    public int FusedGroups => _fused.Values.Distinct().Count();

    /// <summary>Rows per work item when rows are quantized or scaled over libtorch's OpenMP team.</summary>
    private const int Chunk = 64;

    /// <summary>Rows appended to every fbgemm call, [1, 0, …] and [−1, 0, …]: they pin fbgemm's activation range to [−1, 1].</summary>
    private const int SentinelRows = 2;

    /// <summary>Whether outputs may be finished in their row pass (<see cref="RowEpilogue"/>): set once the load-time check agreed.</summary>
    public bool RowEpilogues { get; internal set; }

    /// <summary>
    /// The int8 projection of <paramref name="linear"/> with <paramref name="epilogue"/> applied to each output row, [rows,
    /// outputs] for <paramref name="x"/> [rows, inputs]; null where it cannot run so (gradients on, row epilogues not
    /// checked, or the Linear not quantized on its own: a stacked one shares its rows with its group).
    /// </summary>
    internal Tensor? RunWithEpilogue(Linear linear, Tensor x, RowEpilogue epilogue) =>
        RowEpilogues && !is_grad_enabled() && _keys.TryGetValue(linear, out var key) ? Run(key, x, epilogue) : null;

    private Tensor Run(long key, Tensor x, RowEpilogue? epilogue = null)
    {
        var pack = _packs[key];
        var inputs = (int)x.shape[^1];
        var rows = (int)(x.NumberOfElements / inputs);
        // contiguous() returns a new handle even where it aliases x: dispose it now rather than leave it to a scope.
        using var input = x.contiguous();
        var magnitudes = new float[rows];
        using var output = pack.Kernel == Int8Kernel.OneDnn
            ? RunOneDnn(pack, input, rows, inputs, magnitudes)
            : RunFbgemm(key, input, rows, inputs, magnitudes);
        ScaleRows(output, rows, magnitudes, pack.Bias, epilogue);
        using var kept = output.narrow(0, 0, rows);
        return kept.reshape([.. x.shape[..^1], output.shape[1]]);
    }

    private unsafe Tensor RunOneDnn(Int8Pack pack, Tensor input, int rows, int inputs, float[] magnitudes)
    {
        using var quantized = empty([rows, inputs], ScalarType.Byte);
        float* source = TensorMemory.Floats(input);
        byte* target = TensorMemory.Bytes(quantized);
        OpenMpTeam.ForRows(0, rows, Chunk, (from, to) =>
        {
            for (var r = from; r < to; r++) magnitudes[r] = Int8Rows.Quantize(source + (long)r * inputs, target + (long)r * inputs, inputs);
        });
        return (Tensor)_ops.invoke("linear_onednn", quantized, (double)Int8Rows.Scale, (long)Int8Rows.ZeroPoint, pack.Packed!, pack.Scales!, pack.ZeroPoints!)!;
    }

    private unsafe Tensor RunFbgemm(long key, Tensor input, int rows, int inputs, float[] magnitudes)
    {
        using var scaled = empty([rows + SentinelRows, inputs], ScalarType.Float32);
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
        return (Tensor)_ops.invoke(_reduceRange ? "linear_reduced" : "linear", key, scaled)!;
    }

    /// <summary>
    /// Multiplies each of the first <paramref name="rows"/> output rows back by its row's magnitude, adds the bias, and
    /// applies <paramref name="epilogue"/> to it while it is in cache.
    /// </summary>
    private static unsafe void ScaleRows(Tensor output, int rows, float[] magnitudes, float[] bias, RowEpilogue? epilogue)
    {
        var outputs = (int)output.shape[1];
        var result = TensorMemory.Floats(output);
        OpenMpTeam.ForRows(0, rows, Chunk, (from, to) =>
        {
            for (var r = from; r < to; r++)
            {
                var row = new Span<float>(result + (long)r * outputs, outputs);
                TensorPrimitives.MultiplyAdd(row, magnitudes[r], bias, row);
                epilogue?.Apply(row, r);
            }
        });
    }

    public void Dispose()
    {
        _keys.Clear();
        _fused.Clear();
        foreach (var pack in _packs.Values) pack.Dispose();
        _packs.Clear();
        _ops.Dispose();
    }
}

/// <summary>The int8 GEMM a projection runs on (see <see cref="QuantizedWeights"/>).</summary>
internal enum Int8Kernel
{
    /// <summary>oneDNN's <c>qlinear_pointwise</c> on rows quantized by <see cref="Int8Rows"/>.</summary>
    OneDnn,

    /// <summary>fbgemm's dynamic Linear, which quantizes its input itself.</summary>
    Fbgemm,
}

/// <summary>
/// One pack: the bias its epilogue adds (packs carry none), how many int8 weights it holds, its kernel, and for oneDNN
/// the packed weight with its per-channel scales and zero points (fbgemm's pack lives in the TorchScript module).
/// </summary>
internal sealed record Int8Pack(float[] Bias, long WeightElements, Int8Kernel Kernel, Tensor? Packed = null, Tensor? Scales = null,
    Tensor? ZeroPoints = null) : IDisposable
{
    public void Dispose()
    {
        Packed?.Dispose();
        Scales?.Dispose();
        ZeroPoints?.Dispose();
    }
}

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
/// What one projection shape got in a quantized body: how many of its Linears run in int8 (on <paramref name="Kernel"/>)
/// and how many stay float32, which were excluded by name, and why the shape stayed float32 or did not run on the
/// first kernel tried.
/// </summary>
public sealed record QuantizedProjectionStatus(string Shape, int Int8Linears, int FloatLinears, IReadOnlyList<string> Excluded, string? Reason)
{
    /// <summary>The kernel the shape's int8 Linears run on (null when none does).</summary>
    internal Int8Kernel? Kernel { get; init; }

    /// <summary>The kernel's name as <c>GET /v1/body</c> reports it: <c>onednn</c>, <c>fbgemm</c>, or null.</summary>
    public string? KernelName => QuantizedWeights.WireName(Kernel);
}
