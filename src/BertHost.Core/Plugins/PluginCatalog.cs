using System.Reflection;
using System.Text.Json;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using McMaster.NETCore.Plugins;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace BertHost.Core.Plugins;

/// <summary>
/// Loads head plugin assemblies and discovers their head kinds. Each distinct assembly file is loaded once, into its
/// own load context (McMaster.NETCore.Plugins), with the plugin contract, TorchSharp, the logging abstractions and
/// System.Text.Json shared with the host: a plugin's <see cref="Tensor"/> is the host's type and one libtorch is loaded.
/// A plugin that fails to load, or a kind that fails to construct, fails only the heads that ask for it.
/// </summary>
public sealed class PluginCatalog : IDisposable
{
    /// <summary>Types whose assemblies (and what those reference) come from the host's default context.</summary>
    public static IReadOnlyList<Type> SharedTypes { get; } =
    [
        typeof(IHeadKind), typeof(IHead), typeof(BodyOutput), typeof(Tensor), typeof(ILogger), typeof(JsonElement),
    ];

    private readonly ILogger _logger;
    private readonly Dictionary<string, LoadedAssembly> _assemblies = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private bool _disposed;

    public PluginCatalog(ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        _logger = logger;
    }

    /// <summary>
    /// The kind named <paramref name="kind"/> from the plugin at <paramref name="pluginPath"/> (a folder or a .dll, see
    /// <see cref="PluginPaths"/>), after checking <paramref name="sha256"/> when given.
    /// </summary>
    /// <exception cref="PluginLoadException">Missing assembly, sha mismatch, load failure or no such kind.</exception>
    public LoadedKind Resolve(string pluginPath, string? sha256, string kind)
    {
        ArgumentException.ThrowIfNullOrEmpty(kind);
        var loaded = Load(pluginPath, sha256);
        if (loaded.Kinds.TryGetValue(kind, out var found)) return found;

        var offers = loaded.Kinds.Count == 0 ? "it offers no head kinds" : $"it offers: {string.Join(", ", loaded.Kinds.Keys.Order(StringComparer.Ordinal))}";
        var broken = loaded.BrokenTypes.Count == 0 ? "" : $"; these types could not be constructed: {string.Join("; ", loaded.BrokenTypes)}";
        throw new PluginLoadException($"no head kind '{kind}' in {Path.GetFileName(loaded.Path)} ({loaded.Path}; {offers}{broken})");
    }

    /// <summary>Every kind the plugin offers, by name.</summary>
    public IReadOnlyList<LoadedKind> KindsIn(string pluginPath, string? sha256) =>
        Load(pluginPath, sha256).Kinds.Values.OrderBy(k => k.Kind.Name, StringComparer.Ordinal).ToList();

    private LoadedAssembly Load(string pluginPath, string? sha256)
    {
        ArgumentException.ThrowIfNullOrEmpty(pluginPath);
        var assemblyPath = PluginPaths.ResolveAssembly(pluginPath, out var lookedFor)
                           ?? throw new PluginLoadException($"plugin '{pluginPath}': no assembly found (looked for {lookedFor}); build or publish the plugin first");
        assemblyPath = Path.GetFullPath(assemblyPath);

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_assemblies.TryGetValue(assemblyPath, out var known))
            {
                CheckPin(assemblyPath, known.Sha256, sha256);
                return known;
            }

            // The pin is checked against the bytes on disk BEFORE any code of the plugin is loaded.
            string actual;
            try
            {
                actual = PluginPaths.Sha256Of(assemblyPath);
            }
            catch (IOException e)
            {
                throw new PluginLoadException($"plugin {assemblyPath}: cannot read it: {e.Message}", e);
            }
            CheckPin(assemblyPath, actual, sha256);

            var loaded = LoadAndDiscover(assemblyPath, actual);
            _assemblies[assemblyPath] = loaded;
            _logger.LogInformation("Loaded plugin {Assembly} (sha256 {Sha256}): head kinds {Kinds}",
                assemblyPath, actual, string.Join(", ", loaded.Kinds.Keys));
            foreach (var broken in loaded.BrokenTypes)
                _logger.LogWarning("Plugin {Assembly}: {Problem}", assemblyPath, broken);
            return loaded;
        }
    }

    private static void CheckPin(string assemblyPath, string actual, string? pinned)
    {
        if (string.IsNullOrWhiteSpace(pinned)) return;
        var want = pinned.Trim();
        if (want.StartsWith("sha256:", StringComparison.OrdinalIgnoreCase)) want = want["sha256:".Length..];
        if (!string.Equals(want, actual, StringComparison.OrdinalIgnoreCase))
            throw new PluginLoadException(
                $"plugin {assemblyPath}: sha256 mismatch: the configuration pins {want.ToLowerInvariant()} but the file's sha256 is {actual}; the plugin was not loaded");
    }

    private LoadedAssembly LoadAndDiscover(string assemblyPath, string sha256)
    {
        PluginLoader loader;
        Assembly assembly;
        Type[] types;
        try
        {
            loader = PluginLoader.CreateFromAssemblyFile(assemblyPath, [.. SharedTypes]);
        }
        catch (Exception e)
        {
            throw new PluginLoadException($"plugin {assemblyPath} could not be loaded: {e.Message}", e);
        }
        try
        {
            assembly = loader.LoadDefaultAssembly();
            types = assembly.GetExportedTypes();
        }
        catch (ReflectionTypeLoadException e)
        {
            loader.Dispose();
            var first = e.LoaderExceptions.FirstOrDefault(x => x is not null)?.Message ?? e.Message;
            throw new PluginLoadException($"plugin {assemblyPath} could not be loaded: {first}", e);
        }
        catch (Exception e)
        {
            loader.Dispose();
            throw new PluginLoadException($"plugin {assemblyPath} could not be loaded: {e.Message}", e);
        }

        var kinds = new Dictionary<string, LoadedKind>(StringComparer.Ordinal);
        var origin = new Dictionary<string, Type>(StringComparer.Ordinal);
        var brokenTypes = new List<string>();
        foreach (var type in types.OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            if (!type.IsClass || type.IsAbstract || type.ContainsGenericParameters || !typeof(IHeadKind).IsAssignableFrom(type)) continue;
            if (type.GetConstructor(Type.EmptyTypes) is null)
            {
                brokenTypes.Add($"{type.FullName} implements IHeadKind but has no public parameterless constructor");
                continue;
            }
            IHeadKind kind;
            string name;
            try
            {
                kind = (IHeadKind)Activator.CreateInstance(type)!;
                name = kind.Name;
            }
            catch (Exception e)
            {
                var inner = e is TargetInvocationException { InnerException: { } x } ? x : e;
                brokenTypes.Add($"{type.FullName} threw {inner.GetType().Name}: {inner.Message}");
                continue;
            }
            if (string.IsNullOrWhiteSpace(name))
            {
                brokenTypes.Add($"{type.FullName} has an empty Name");
                continue;
            }
            if (origin.TryGetValue(name, out var twin))
            {
                loader.Dispose();
                throw new PluginLoadException(
                    $"plugin {assemblyPath} offers head kind '{name}' twice ({twin.FullName} and {type.FullName}); kind names must be unique in an assembly");
            }
            origin[name] = type;
            kinds[name] = new LoadedKind(kind, assemblyPath, sha256);
        }
        return new LoadedAssembly(assemblyPath, sha256, loader, kinds, brokenTypes);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var a in _assemblies.Values) a.Loader.Dispose();
            _assemblies.Clear();
        }
    }

    private sealed record LoadedAssembly(string Path, string Sha256, PluginLoader Loader,
        IReadOnlyDictionary<string, LoadedKind> Kinds, IReadOnlyList<string> BrokenTypes);
}
