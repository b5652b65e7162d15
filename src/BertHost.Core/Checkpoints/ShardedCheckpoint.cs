using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// A sharded Hugging Face checkpoint: an index (<c>model.safetensors.index.json</c> or
/// <c>pytorch_model.bin.index.json</c>) whose <c>weight_map</c> maps each tensor name to a shard file in the same
/// folder. Shards are opened lazily, each at most once, and kept open until this object is disposed. Every shard named
/// by the index must exist (checked when the index is opened).
/// </summary>
public sealed class ShardedCheckpoint : ITensorSource
{
    private readonly Dictionary<string, string> _weightMap;
    private readonly string[] _shardFiles;
    private readonly Dictionary<string, ITensorSource> _open = new(StringComparer.Ordinal);
    private readonly object _gate = new();
    private IReadOnlyList<TensorInfo>? _tensors;
    private bool _disposed;

    private ShardedCheckpoint(string indexPath, Dictionary<string, string> weightMap, string[] shardFiles,
        IReadOnlyDictionary<string, string> metadata)
    {
        IndexPath = indexPath;
        _weightMap = weightMap;
        _shardFiles = shardFiles;
        Metadata = metadata;
    }

    /// <summary>The full path of the index file.</summary>
    public string IndexPath { get; }

    public string Description => IndexPath;

    /// <summary>The shard files (full paths), in index order.</summary>
    public IReadOnlyList<string> ShardFiles => _shardFiles;

    /// <summary>The index's "metadata" object, values as JSON text (e.g. "total_size" → "1234").</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The tensor names of the weight map, in index order.</summary>
    public IReadOnlyCollection<string> Names => _weightMap.Keys;

    /// <summary>
    /// Every tensor of the weight map, with dtype and shape. The first access opens every shard (their headers or
    /// pickles, not their data).
    /// </summary>
    public IReadOnlyList<TensorInfo> Tensors
    {
        get
        {
            if (_tensors is not null) return _tensors;
            var list = new List<TensorInfo>(_weightMap.Count);
            foreach (var (name, file) in _weightMap)
            {
                var shard = Shard(file);
                var info = shard.Tensors.FirstOrDefault(t => t.Name == name)
                           ?? throw new CheckpointException(IndexPath, name, $"the weight map names shard '{file}', which does not hold it");
                list.Add(info);
            }
            return _tensors = list;
        }
    }

    public bool Contains(string name) => _weightMap.ContainsKey(name);

    /// <summary>Opens an index file and checks that every shard it names exists.</summary>
    /// <exception cref="CheckpointException">Malformed index, a shard name escaping the folder, or a missing shard.</exception>
    public static ShardedCheckpoint Open(string indexPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(indexPath);
        indexPath = Path.GetFullPath(indexPath);
        if (!File.Exists(indexPath)) throw new CheckpointException(indexPath, null, "index file not found");
        var folder = Path.GetDirectoryName(indexPath)!;

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        }
        catch (JsonException e)
        {
            throw new CheckpointException(indexPath, null, $"index is not valid JSON: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(indexPath, null, $"cannot read index: {e.Message}", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new CheckpointException(indexPath, null, "index has no 'weight_map' object");

            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            if (root.TryGetProperty("metadata", out var meta) && meta.ValueKind == JsonValueKind.Object)
                foreach (var p in meta.EnumerateObject())
                    metadata[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();

            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            var shards = new List<string>();
            foreach (var p in map.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(p.Value.GetString()))
                    throw new CheckpointException(indexPath, p.Name, "weight_map value must be a shard file name");
                var file = p.Value.GetString()!;
                if (Path.IsPathRooted(file) || file.Split('/', '\\').Contains(".."))
                    throw new CheckpointException(indexPath, p.Name, $"shard '{file}' must be a file name inside the index's folder");
                if (!weightMap.TryAdd(p.Name, file))
                    throw new CheckpointException(indexPath, p.Name, "tensor appears twice in the weight_map");
                if (!shards.Contains(file)) shards.Add(file);
            }
            if (weightMap.Count == 0) throw new CheckpointException(indexPath, null, "weight_map is empty");

            var missing = shards.Where(s => !File.Exists(Path.Combine(folder, s))).ToList();
            if (missing.Count > 0)
                throw new CheckpointException(indexPath, null,
                    $"missing shard file{(missing.Count > 1 ? "s" : "")}: {string.Join(", ", missing.Select(m => $"'{Path.Combine(folder, m)}'"))}");
            return new ShardedCheckpoint(indexPath, weightMap, shards.Select(s => Path.Combine(folder, s)).ToArray(), metadata);
        }
    }

    public Tensor Read(string name) => ShardOf(name).Read(name);

    public void ReadInto(string name, Tensor destination) => ShardOf(name).ReadInto(name, destination);

    private ITensorSource ShardOf(string name)
    {
        if (!_weightMap.TryGetValue(name, out var file))
            throw new CheckpointException(IndexPath, name, "no such tensor in the index's weight_map");
        var shard = Shard(file);
        if (!shard.Contains(name))
            throw new CheckpointException(shard.Description, name, $"the index '{IndexPath}' maps this tensor to this shard, but the shard does not hold it");
        return shard;
    }

    private ITensorSource Shard(string file)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_open.TryGetValue(file, out var s)) return s;
            var path = Path.Combine(Path.GetDirectoryName(IndexPath)!, file);
            if (!File.Exists(path))
                throw new CheckpointException(IndexPath, null, $"missing shard file '{path}'");
            s = CheckpointFiles.Open(path);
            _open[file] = s;
            return s;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var s in _open.Values) s.Dispose();
            _open.Clear();
        }
    }

    public override string ToString() => $"sharded checkpoint '{IndexPath}' ({_weightMap.Count} tensors in {_shardFiles.Length} files)";
}
