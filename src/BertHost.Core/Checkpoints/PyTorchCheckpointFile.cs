using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;
using static BertHost.Core.Checkpoints.RestrictedUnpickler;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// A <c>pytorch_model.bin</c> / <c>.pt</c> file in the zip format <c>torch.save</c> writes since torch 1.6:
/// <c>&lt;prefix&gt;/data.pkl</c> (the pickled state dict, where each tensor refers to a storage by key) and
/// <c>&lt;prefix&gt;/data/&lt;key&gt;</c> (each storage's raw little-endian bytes). The pickle is run by a restricted VM that
/// only understands tensors, storages and (Ordered)dicts and never executes code. Nested dicts are flattened with
/// "." (so <c>{"model": {"w": t}}</c> gives "model.w"); values other than tensors and dicts are ignored.
/// Tensor views are honoured (storage offset and strides); tensors sharing a storage (tied weights) each read their
/// own range of it. The zip is kept open; storages are read from it on demand, one tensor at a time.
/// </summary>
public sealed class PyTorchCheckpointFile : ITensorSource
{
    private readonly object _gate = new();
    private readonly Dictionary<string, TensorRef> _refs;
    private readonly TensorInfo[] _tensors;
    private readonly string _prefix;
    private ZipArchive? _zip;

    private PyTorchCheckpointFile(string path, ZipArchive zip, string prefix, List<KeyValuePair<string, TensorRef>> tensors)
    {
        Path = path;
        _zip = zip;
        _prefix = prefix;
        _refs = new Dictionary<string, TensorRef>(StringComparer.Ordinal);
        foreach (var (k, v) in tensors) _refs[k] = v;
        _tensors = tensors.Select(kv => new TensorInfo(kv.Key, kv.Value.Storage.DType, kv.Value.Size)).ToArray();
    }

    /// <summary>The full path of the file.</summary>
    public string Path { get; }

    public string Description => Path;

    /// <summary>The tensors in the order the state dict holds them.</summary>
    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    public bool Contains(string name) => _refs.ContainsKey(name);

    /// <summary>Opens a torch.save zip checkpoint and reads its tensor table (not the tensor data).</summary>
    /// <exception cref="CheckpointException">Absent, legacy (pre-1.6) or otherwise unsupported file, a refused pickle, or inconsistent storages.</exception>
    public static PyTorchCheckpointFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new CheckpointException(path, null, "file not found");

        FileStream? fs = null;
        ZipArchive? zip = null;
        try
        {
            fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.RandomAccess);
            Span<byte> magic = stackalloc byte[4];
            var got = fs.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
            if (got >= 2 && magic[0] == 0x80 && magic[1] <= 5 && (got < 4 || (magic[2] == 0x8a && magic[3] == 0x0a)))
                throw new CheckpointException(path, null,
                    "legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a newer torch " +
                    "(torch.save(torch.load(f), f) with torch >= 1.6) or convert it to safetensors");
            if (got < 4 || magic[0] != (byte)'P' || magic[1] != (byte)'K')
                throw new CheckpointException(path, null, "not a torch.save zip checkpoint (the file does not start with a zip header)");
            fs.Position = 0;
            try
            {
                zip = new ZipArchive(fs, ZipArchiveMode.Read, leaveOpen: false);
            }
            catch (InvalidDataException e)
            {
                throw new CheckpointException(path, null, $"not a readable zip archive: {e.Message}", e);
            }
            fs = null; // owned by the archive

            var pkl = zip.Entries
                .Where(e => e.FullName == "data.pkl" || e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal))
                .OrderBy(e => e.FullName.Count(c => c == '/'))
                .FirstOrDefault()
                ?? throw new CheckpointException(path, null,
                    "no '<name>/data.pkl' entry: not a torch.save state dict (a TorchScript archive or another zip?)");
            var prefix = pkl.FullName[..^"data.pkl".Length];

            var byteorder = zip.GetEntry(prefix + "byteorder");
            if (byteorder is not null)
            {
                var order = Encoding.ASCII.GetString(ReadSmallEntry(path, byteorder, 16)).Trim();
                if (order != "little")
                    throw new CheckpointException(path, null,
                        $"storages are stored with byteorder '{order}'; only little-endian checkpoints are supported");
            }

            object? root;
            try
            {
                root = RestrictedUnpickler.Load(ReadSmallEntry(path, pkl, 1L << 30));
            }
            catch (InvalidDataException e)
            {
                throw new CheckpointException(path, null, $"{pkl.FullName}: {e.Message}", e);
            }

            var tensors = new List<KeyValuePair<string, TensorRef>>();
            switch (root)
            {
                case PyDict dict:
                    Flatten(path, dict, "", tensors, 0);
                    var seen = new HashSet<string>(StringComparer.Ordinal);
                    foreach (var (name, _) in tensors)
                        if (!seen.Add(name))
                            throw new CheckpointException(path, name, "tensor name appears twice after flattening nested dicts");
                    break;
                case TensorRef:
                    throw new CheckpointException(path, null, "holds a single tensor, not a state dict of named tensors");
                default:
                    throw new CheckpointException(path, null, $"holds {Describe(root)}, not a state dict of named tensors");
            }

            foreach (var (name, t) in tensors) Validate(path, zip, prefix, name, t);
            var result = new PyTorchCheckpointFile(path, zip, prefix, tensors);
            zip = null;
            return result;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, null, $"cannot read file: {e.Message}", e);
        }
        finally
        {
            zip?.Dispose();
            fs?.Dispose();
        }
    }

    private static void Flatten(string path, PyDict dict, string prefix, List<KeyValuePair<string, TensorRef>> into, int depth)
    {
        if (depth > 16) throw new CheckpointException(path, null, "state dict nests more than 16 levels deep");
        foreach (var (key, value) in dict.Items)
        {
            if (key is not string name) continue;
            switch (value)
            {
                case TensorRef t:
                    into.Add(new(prefix + name, t));
                    break;
                case PyDict inner:
                    Flatten(path, inner, prefix + name + ".", into, depth + 1);
                    break;
            }
        }
    }

    private static void Validate(string path, ZipArchive zip, string prefix, string name, TensorRef t)
    {
        var entryName = prefix + "data/" + t.Storage.Key;
        var entry = zip.GetEntry(entryName)
                    ?? throw new CheckpointException(path, name, $"storage '{t.Storage.Key}' is missing (no zip entry '{entryName}')");
        var es = DTypes.ElementSize(t.Storage.DType);
        long storageBytes;
        try
        {
            storageBytes = checked(t.Storage.Numel * es);
        }
        catch (OverflowException)
        {
            throw new CheckpointException(path, name, $"storage '{t.Storage.Key}' numel {t.Storage.Numel} is too large");
        }
        // torch 1.13 writes numel in elements; entry length is authoritative when they disagree by being larger.
        if (entry.Length < storageBytes)
            throw new CheckpointException(path, name,
                $"storage '{t.Storage.Key}' holds {entry.Length} bytes, but {t.Storage.Numel} x {t.Storage.DType} needs {storageBytes}");
        var (_, last) = Span(t);
        if (last > entry.Length / es)
            throw new CheckpointException(path, name,
                $"view (offset {t.StorageOffset}, size [{string.Join(",", t.Size)}], stride [{string.Join(",", t.Stride)}]) " +
                $"reaches element {last - 1} of storage '{t.Storage.Key}', which has {entry.Length / es}");
    }

    /// <summary>The element range [first, last) of the storage a view touches (empty for zero-element views).</summary>
    private static (long First, long Last) Span(TensorRef t)
    {
        long count = 1, maxIndex = 0;
        for (var i = 0; i < t.Size.Length; i++)
        {
            count = checked(count * t.Size[i]);
            if (t.Size[i] > 0) maxIndex = checked(maxIndex + (t.Size[i] - 1) * t.Stride[i]);
        }
        return count == 0 ? (t.StorageOffset, t.StorageOffset) : (t.StorageOffset, checked(t.StorageOffset + maxIndex + 1));
    }

    private static bool IsContiguous(TensorRef t)
    {
        long expected = 1;
        for (var i = t.Size.Length - 1; i >= 0; i--)
        {
            if (t.Size[i] == 0) return true;
            if (t.Size[i] != 1 && t.Stride[i] != expected) return false;
            expected *= t.Size[i];
        }
        return true;
    }

    public Tensor Read(string name)
    {
        if (!_refs.TryGetValue(name, out var t))
            throw new CheckpointException(Path, name, "no such tensor in the file");
        var dtype = DTypes.ToScalarType(t.Storage.DType);
        var es = DTypes.ElementSize(t.Storage.DType);
        var (first, last) = Span(t);
        var result = torch.empty(t.Size, dtype);
        try
        {
            if (last == first) return result;
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_zip is null, this);
                var entry = _zip.GetEntry(_prefix + "data/" + t.Storage.Key)!;
                using var stream = entry.Open();
                SkipBytes(stream, first * es);
                if (IsContiguous(t))
                {
                    // The common case: read exactly the view's bytes straight into the result.
                    TensorBytes.Fill(result, (_, span) => stream.ReadExactly(span));
                }
                else
                {
                    // A strided view: read the touched range of the storage once, then gather it.
                    using var range = torch.empty(last - first, dtype);
                    TensorBytes.Fill(range, (_, span) => stream.ReadExactly(span));
                    using var view = range.as_strided(t.Size, t.Stride, 0);
                    result.copy_(view);
                }
            }
            return result;
        }
        catch (EndOfStreamException e)
        {
            result.Dispose();
            throw new CheckpointException(Path, name, $"storage '{t.Storage.Key}' ends early", e);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            result.Dispose();
            throw new CheckpointException(Path, name, $"cannot read storage '{t.Storage.Key}': {e.Message}", e);
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    private static void SkipBytes(Stream stream, long count)
    {
        if (count == 0) return;
        if (stream.CanSeek)
        {
            stream.Seek(count, SeekOrigin.Current);
            return;
        }
        var buffer = new byte[(int)Math.Min(count, 1 << 16)];
        while (count > 0)
        {
            var n = stream.Read(buffer, 0, (int)Math.Min(count, buffer.Length));
            if (n == 0) throw new EndOfStreamException();
            count -= n;
        }
    }

    private static byte[] ReadSmallEntry(string path, ZipArchiveEntry entry, long limit)
    {
        if (entry.Length > limit)
            throw new CheckpointException(path, null, $"zip entry '{entry.FullName}' is {entry.Length} bytes, more than the {limit} allowed");
        var bytes = new byte[entry.Length];
        using var s = entry.Open();
        s.ReadExactly(bytes);
        return bytes;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _zip?.Dispose();
            _zip = null;
        }
    }

    public override string ToString() => $"torch zip checkpoint '{Path}' ({_tensors.Length} tensors)";
}
