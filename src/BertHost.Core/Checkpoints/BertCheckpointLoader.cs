using BertHost.Core.Bert;
using static TorchSharp.torch;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// Copies a checkpoint's body tensors into a <see cref="BertModel"/> by plain name match (after <see cref="BertKeyMap"/>),
/// checking that every body parameter is present and has the right shape. Stored dtypes (F32/F16/BF16) are
/// converted to the parameter's dtype on copy.
/// </summary>
public static class BertCheckpointLoader
{
    private const string PoolerRoot = "pooler.";

    /// <summary>Pooler weights are optional in published checkpoints; this tells before the model is built.</summary>
    public static bool HasPooler(ITensorSource source) =>
        source.Tensors.Any(t => BertKeyMap.Classify(t.Name) is (BertKeyMap.KeyKind.Body, var n) && n.StartsWith(PoolerRoot, StringComparison.Ordinal));

    public static BodyLoadReport Load(BertModel model, ITensorSource source)
    {
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var plan = Plan(source, parameters.Select(p => (p.Key, p.Value.shape)).ToList());

        using (no_grad())
        {
            foreach (var (name, parameter) in parameters) source.ReadInto(plan.Stored[name].Name, parameter);
        }

        return new BodyLoadReport
        {
            Source = source.Description,
            LoadedTensors = parameters.Count,
            HeadKeys = plan.HeadKeys,
            UnexpectedKeys = plan.Unexpected,
            HasPooler = parameters.Keys.Any(k => k.StartsWith(PoolerRoot, StringComparison.Ordinal)),
            Prefixed = plan.Prefixed,
        };
    }

    /// <summary>Which stored tensor fills each expected body parameter (every one present, with its shape).</summary>
    internal sealed record LoadPlan(IReadOnlyDictionary<string, TensorInfo> Stored, List<string> HeadKeys, List<string> Unexpected, bool Prefixed);

    /// <summary>
    /// Matches a checkpoint's tensors to the body parameters <paramref name="expected"/> (names after
    /// <see cref="BertKeyMap"/>, shapes); a missing parameter or a wrong shape is a <see cref="CheckpointException"/>.
    /// </summary>
    internal static LoadPlan Plan(ITensorSource source, IReadOnlyList<(string Name, long[] Shape)> expected)
    {
        var stored = MapBodyKeys(source, out var headKeys, out var prefixed);
        var names = expected.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var unexpected = stored.Keys.Where(k => !names.Contains(k)).Select(k => stored[k].Name).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var missing = expected.Select(p => p.Name).Where(k => !stored.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
            throw new CheckpointException(
                $"{source.Description}: {missing.Count} body weight(s) missing: {string.Join(", ", missing.Take(20))}{(missing.Count > 20 ? ", ..." : "")}" +
                $" (the checkpoint has {stored.Count} body tensors; check that config.json matches the weights)");

        var wrongShapes = expected
            .Where(p => !stored[p.Name].Shape.SequenceEqual(p.Shape))
            .Select(p => $"{stored[p.Name].Name} is [{string.Join(",", stored[p.Name].Shape)}], expected [{string.Join(",", p.Shape)}]")
            .ToList();
        if (wrongShapes.Count > 0)
            throw new CheckpointException($"{source.Description}: shape mismatch: {string.Join("; ", wrongShapes)} (config.json and the weights disagree)");
        return new LoadPlan(stored.Where(p => names.Contains(p.Key)).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal), headKeys, unexpected, prefixed);
    }

    private static Dictionary<string, TensorInfo> MapBodyKeys(ITensorSource source, out List<string> headKeys, out bool prefixed)
    {
        var stored = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        headKeys = [];
        prefixed = false;
        foreach (var info in source.Tensors)
        {
            var (kind, bodyName) = BertKeyMap.Classify(info.Name);
            switch (kind)
            {
                case BertKeyMap.KeyKind.Head:
                    headKeys.Add(info.Name);
                    break;
                case BertKeyMap.KeyKind.Body:
                    if (stored.TryGetValue(bodyName, out var twin))
                        throw new CheckpointException($"{source.Description}: '{twin.Name}' and '{info.Name}' both map to body weight '{bodyName}'");
                    stored[bodyName] = info;
                    prefixed |= info.Name.StartsWith(BertKeyMap.BodyPrefix, StringComparison.Ordinal);
                    break;
            }
        }
        headKeys.Sort(StringComparer.Ordinal);
        return stored;
    }
}
