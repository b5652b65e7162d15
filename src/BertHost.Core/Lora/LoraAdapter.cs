using BertHost.Core.Bert;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Lora;

/// <summary>
/// One head's low-rank adapter for a body: for each targeted Linear (by its Hugging Face module name, e.g.
/// <c>encoder.layer.0.attention.self.query</c>) a pair A [r,in], B [out,r]. The body's weights are never touched; a
/// pass adds (alpha/r)·B·A·x to the targeted projections of the rows the adapter is applied to (<see cref="LoraPass"/>).
/// </summary>
public sealed class LoraAdapter : IDisposable
{
    /// <summary>Prefix of the adapter's tensors in a head folder's head.safetensors (a "/" never occurs in a module's state names).</summary>
    public const string KeyPrefix = BertHost.Abstractions.Heads.HeadWeights.AdapterKeyPrefix;

    private readonly SortedDictionary<string, LoraPair> _pairs;

    private LoraAdapter(LoraSettings settings, SortedDictionary<string, LoraPair> pairs)
    {
        Settings = settings;
        _pairs = pairs;
    }

    public LoraSettings Settings { get; }

    /// <summary>The adapted modules, in name order, with their pairs.</summary>
    public IReadOnlyDictionary<string, LoraPair> Pairs => _pairs;

    /// <summary>Bytes of A and B over every target.</summary>
    public long Bytes => _pairs.Values.Sum(p => p.A.NumberOfElements * p.A.ElementSize + p.B.NumberOfElements * p.B.ElementSize);

    /// <summary>Parameter count (what trains).</summary>
    public long ParameterCount => _pairs.Values.Sum(p => p.A.NumberOfElements + p.B.NumberOfElements);

    /// <summary>The Linears of <paramref name="model"/> that <paramref name="settings"/> targets, by module name.</summary>
    public static IReadOnlyList<(string Name, Linear Linear)> TargetsIn(BertModel model, LoraSettings settings)
    {
        var targets = model.named_modules().Where(m => m.module is Linear && settings.IsTarget(m.name))
            .Select(m => (m.name, (Linear)m.module)).ToList();
        if (targets.Count == 0)
            throw new ArgumentException($"lora targets {string.Join(",", settings.TargetModules)} match no Linear of the body's encoder layers " +
                                        "(names like encoder.layer.0.attention.self.query; query, key, value, attention.output.dense, intermediate.dense, output.dense or all-linear)");
        return targets;
    }

    /// <summary>
    /// A fresh adapter, initialised as PEFT does: A Kaiming-uniform (a = √5, torch's Linear default), B zero, so the
    /// adapted body starts out equal to the base body. Float32 parameters on <paramref name="model"/>'s device.
    /// </summary>
    public static LoraAdapter Create(BertModel model, LoraSettings settings, long seed)
    {
        settings.Validate();
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed);
        var device = model.embeddings.word_embeddings.weight!.device;
        var pairs = new SortedDictionary<string, LoraPair>(StringComparer.Ordinal);
        foreach (var (name, linear) in TargetsIn(model, settings))
        {
            // kaiming_uniform_(a=√5) on [r,in] is U(−1/√in, 1/√in).
            var bound = 1.0 / Math.Sqrt(linear.in_features);
            var a = rand([settings.Rank, linear.in_features], generator: generator).mul_(2 * bound).sub_(bound);
            var b = zeros([linear.out_features, settings.Rank]);
            pairs[name] = new LoraPair(new Parameter(a.to(device)), new Parameter(b.to(device)));
            a.Dispose();
            b.Dispose();
        }
        return new LoraAdapter(settings, pairs);
    }

    /// <summary>
    /// A parameter on <paramref name="t"/>'s storage (converted only where dtype or device differ), not a copy: the
    /// caller's handle may be disposed, the storage lives on with the parameter. Copying each tensor after reading it
    /// left the read buffers as holes between the copies, and ten LoRA heads cost the process twice their adapters' bytes.
    /// </summary>
    private static Parameter Owned(Tensor t, Device device)
    {
        using var converted = t.to(ScalarType.Float32, device);
        using var detached = converted.detach();
        return new Parameter(detached);
    }

    /// <summary>
    /// An adapter from stored tensors named <c>MODULE.lora_A.weight</c> / <c>MODULE.lora_B.weight</c> (on their storage, not
    /// copies: the caller may dispose its handles), checked against <paramref name="model"/>: every pair must name a Linear of the body with the
    /// shapes that Linear needs. Errors name the tensor and what is wrong.
    /// </summary>
    public static LoraAdapter FromTensors(BertModel model, LoraSettings settings, IReadOnlyDictionary<string, Tensor> tensors, string where)
    {
        settings.Validate();
        var linears = model.named_modules().Where(m => m.module is Linear).ToDictionary(m => m.name, m => (Linear)m.module);
        var device = model.embeddings.word_embeddings.weight!.device;
        var pairs = new SortedDictionary<string, LoraPair>(StringComparer.Ordinal);
        var modules = tensors.Keys.Select(k => ModuleOf(k) ?? throw new FormatException($"{where}: '{k}' is not a lora_A or lora_B weight")).Distinct();
        try
        {
            using var noGrad = no_grad();
            foreach (var module in modules)
            {
                if (!linears.TryGetValue(module, out var linear)) throw new FormatException($"{where}: '{module}' is not a Linear of the body");
                if (!tensors.TryGetValue(module + ".lora_A.weight", out var a)) throw new FormatException($"{where}: {module}.lora_A.weight is missing");
                if (!tensors.TryGetValue(module + ".lora_B.weight", out var b)) throw new FormatException($"{where}: {module}.lora_B.weight is missing");
                long[] wantA = [settings.Rank, linear.in_features], wantB = [linear.out_features, settings.Rank];
                if (!a.shape.SequenceEqual(wantA)) throw new FormatException($"{where}: {module}.lora_A.weight is [{string.Join(",", a.shape)}], r={settings.Rank} on this body needs [{string.Join(",", wantA)}]");
                if (!b.shape.SequenceEqual(wantB)) throw new FormatException($"{where}: {module}.lora_B.weight is [{string.Join(",", b.shape)}], r={settings.Rank} on this body needs [{string.Join(",", wantB)}]");
                pairs[module] = new LoraPair(Owned(a, device), Owned(b, device));
            }
            if (pairs.Count == 0) throw new FormatException($"{where}: no lora_A / lora_B weights");
            return new LoraAdapter(settings, pairs);
        }
        catch
        {
            foreach (var p in pairs.Values) p.Dispose();
            throw;
        }
    }

    private static string? ModuleOf(string key)
    {
        foreach (var suffix in new[] { ".lora_A.weight", ".lora_B.weight" })
            if (key.EndsWith(suffix, StringComparison.Ordinal)) return key[..^suffix.Length];
        return null;
    }

    /// <summary>The trainable tensors, keyed <c>MODULE.lora_A.weight</c> / <c>MODULE.lora_B.weight</c>.</summary>
    public IEnumerable<(string Key, Parameter Parameter)> NamedParameters()
    {
        foreach (var (name, pair) in _pairs)
        {
            yield return (name + ".lora_A.weight", pair.A);
            yield return (name + ".lora_B.weight", pair.B);
        }
    }

    /// <summary>The tensors as stored in a head folder (<see cref="KeyPrefix"/> + key).</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> StoredTensors() =>
        NamedParameters().Select(p => KeyValuePair.Create(KeyPrefix + p.Key, (Tensor)p.Parameter));

    /// <summary>Adds (alpha/r)·B·A into the targeted weights of <paramref name="model"/> (a private copy: the change is permanent).</summary>
    public void MergeInto(BertModel model)
    {
        var linears = model.named_modules().Where(m => m.module is Linear).ToDictionary(m => m.name, m => (Linear)m.module);
        using var noGrad = no_grad();
        foreach (var (name, pair) in _pairs)
        {
            var weight = linears[name].weight!;
            using var delta = pair.B.matmul(pair.A).mul_(Settings.Scale);
            using var cast = delta.to(weight.dtype, weight.device);
            weight.add_(cast);
        }
    }

    public void Dispose()
    {
        foreach (var p in _pairs.Values) p.Dispose();
        _pairs.Clear();
    }
}

/// <summary>One targeted Linear's A [r,in] and B [out,r].</summary>
public sealed record LoraPair(Parameter A, Parameter B) : IDisposable
{
    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}
