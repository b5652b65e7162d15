using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;
using static BertHost.Core.Checkpoints.RestrictedUnpickler;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// A <c>pytorch_model.bin</c> / <c>.pt</c> file written by <c>torch.save</c>, in either of its two formats:
/// <list type="bullet">
/// <item>the zip format (torch &gt;= 1.6): <c>&lt;prefix&gt;/data.pkl</c> (the pickled state dict, where each tensor refers
/// to a storage by key) and <c>&lt;prefix&gt;/data/&lt;key&gt;</c> (each storage's raw little-endian bytes);</item>
/// <item>the legacy format (older torch, or <c>_use_new_zipfile_serialization=False</c>; e.g. the original
/// bert-base-uncased <c>pytorch_model.bin</c>): consecutive pickles in one file, namely the magic number
/// 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict (only little-endian files are accepted), the
/// state dict, and the list of storage keys; then, for each key in that order, an 8-byte little-endian element count
/// and the storage's raw little-endian bytes. Legacy storage views (view_metadata) are honoured.</item>
/// </list>
/// Pickles are run by a restricted VM that only understands tensors, storages and (Ordered)dicts and never executes
/// code. Nested dicts are flattened with "." (so <c>{"model": {"w": t}}</c> gives "model.w"); values other than tensors
/// and dicts are ignored. Tensor views are honoured (storage offset and strides); tensors sharing a storage (tied
/// weights) each read their own range of it. The file is kept open (a zip archive, or for the legacy format the file
/// with each storage's byte offset, found by seeking past the raw data once at open); tensor bytes are read from it on
/// demand, one tensor at a time, never the whole file at once.
/// </summary>
public sealed class PyTorchCheckpointFile : ITensorSource
{
    private readonly object _gate = new();
    private readonly Dictionary<string, TensorRef> _refs;
    private readonly TensorInfo[] _tensors;
    private readonly string _prefix;
    private readonly Dictionary<string, LegacyStorage>? _legacyStorages;
    private ZipArchive? _zip;
    private FileStream? _file;

    /// <summary>Where a legacy-format storage's raw bytes lie in the file.</summary>
    private readonly record struct LegacyStorage(long DataOffset, long ByteLength);

    /// <summary>The legacy format's first pickle: torch.serialization.MAGIC_NUMBER.</summary>
    private static readonly BigInteger LegacyMagicNumber = BigInteger.Parse("1950a86a20f9469cfc6c", System.Globalization.NumberStyles.HexNumber);

    private const long LegacyProtocolVersion = 1001;

    private PyTorchCheckpointFile(string path, ZipArchive? zip, string prefix, FileStream? file,
        Dictionary<string, LegacyStorage>? legacyStorages, List<KeyValuePair<string, TensorRef>> tensors)
    {
        Path = path;
        _zip = zip;
        _prefix = prefix;
        _file = file;
        _legacyStorages = legacyStorages;
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

    /// <summary>True for the legacy (pre-1.6, non-zip) torch.save format, false for the zip format.</summary>
    public bool IsLegacyFormat => _legacyStorages is not null;

    /// <summary>Opens a torch.save checkpoint (zip or legacy format) and reads its tensor table (not the tensor data).</summary>
    /// <exception cref="CheckpointException">Absent, truncated or unsupported file, a refused pickle, or inconsistent storages.</exception>
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
            if (got >= 1 && magic[0] == 0x80)
            {
                // A pickle PROTO opcode: the legacy format (its first pickle is the magic number, 80 02 8a 0a ...).
                var legacy = OpenLegacy(path, fs);
                fs = null; // owned by the result
                return legacy;
            }
            if (got < 4 || magic[0] != (byte)'P' || magic[1] != (byte)'K')
                throw new CheckpointException(path, null,
                    "not a torch.save checkpoint (the file starts with neither a zip header nor a pickle of the legacy format)");
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

            var tensors = TensorsOf(path, root);
            foreach (var (name, t) in tensors)
            {
                var entryName = prefix + "data/" + t.Storage.Key;
                var entry = zip.GetEntry(entryName)
                            ?? throw new CheckpointException(path, name, $"storage '{t.Storage.Key}' is missing (no zip entry '{entryName}')");
                Validate(path, name, t, entry.Length);
            }
            var result = new PyTorchCheckpointFile(path, zip, prefix, null, null, tensors);
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

    /// <summary>
    /// Reads the legacy format from <paramref name="fs"/> (positioned anywhere): the five pickles, then the storage
    /// table, found by reading each storage's element count and seeking past its bytes. On success the result owns
    /// <paramref name="fs"/>; on failure the caller disposes it.
    /// </summary>
    private static PyTorchCheckpointFile OpenLegacy(string path, FileStream fs)
    {
        const string format = "legacy torch.save format";
        fs.Position = 0;

        var magic = LegacyPickle(path, fs, "magic number", null);
        if (magic is not BigInteger m || m != LegacyMagicNumber)
            throw new CheckpointException(path, null,
                $"starts with a pickle ({Describe(magic)}) but not the magic number of the {format}; not a torch.save checkpoint, or a corrupt one");
        var protocol = LegacyPickle(path, fs, "protocol version", null);
        if (protocol is not long p || p != LegacyProtocolVersion)
            throw new CheckpointException(path, null, $"{format} protocol version {Describe(protocol)} is not supported (expected {LegacyProtocolVersion})");
        var sysInfo = LegacyPickle(path, fs, "sys_info", null);
        if (sysInfo is not PyDict info)
            throw new CheckpointException(path, null, $"{format}: sys_info is {Describe(sysInfo)}, not a dict");
        var littleEndian = info.Items.FirstOrDefault(kv => kv.Key is "little_endian");
        if (littleEndian.Key is not null && littleEndian.Value is not true)
            throw new CheckpointException(path, null,
                $"was saved on a big-endian machine (sys_info little_endian = {Describe(littleEndian.Value)}); only little-endian checkpoints are supported");

        var storages = new List<StorageRef>();
        var root = LegacyPickle(path, fs, "state dict", storages);
        var tensors = TensorsOf(path, root);
        var keyList = LegacyPickle(path, fs, "storage key list", null) as List<object?>
                      ?? throw new CheckpointException(path, null, $"{format}: the pickle after the state dict is not the list of storage keys");

        // The raw bytes of each storage are stored with the element size of the first reference to it (as torch's
        // _legacy_load reads them).
        var elementSize = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var s in storages) elementSize.TryAdd(s.Key, DTypes.ElementSize(s.DType));

        var table = new Dictionary<string, LegacyStorage>(StringComparer.Ordinal);
        var length = fs.Length;
        var pos = fs.Position;
        Span<byte> count = stackalloc byte[8];
        foreach (var k in keyList)
        {
            var key = k switch
            {
                string s => s,
                long l => l.ToString(System.Globalization.CultureInfo.InvariantCulture),
                _ => throw new CheckpointException(path, null, $"{format}: storage key list holds {Describe(k)}, not a key"),
            };
            if (!elementSize.TryGetValue(key, out var es))
                throw new CheckpointException(path, null, $"{format}: storage list names '{key}', which no tensor refers to (corrupt file?)");
            if (table.ContainsKey(key))
                throw new CheckpointException(path, null, $"{format}: storage list names '{key}' twice (corrupt file?)");
            if (length - pos < 8)
                throw new CheckpointException(path, null,
                    $"{format}: the file is truncated: it ends at byte {length}, before the element count of storage '{key}' (byte {pos})");
            fs.Position = pos;
            fs.ReadExactly(count);
            var n = BinaryPrimitives.ReadInt64LittleEndian(count);
            long bytes;
            try
            {
                bytes = n < 0 ? -1 : checked(n * es);
            }
            catch (OverflowException)
            {
                bytes = -1;
            }
            if (bytes < 0)
                throw new CheckpointException(path, null, $"{format}: storage '{key}' has an impossible element count {n} (corrupt file?)");
            if (bytes > length - pos - 8)
                throw new CheckpointException(path, null,
                    $"{format}: the file is truncated: storage '{key}' needs {bytes} bytes from byte {pos + 8}, but the file ends at byte {length}");
            table[key] = new LegacyStorage(pos + 8, bytes);
            pos += 8 + bytes;
        }

        foreach (var (name, t) in tensors)
        {
            if (!table.TryGetValue(t.Storage.Key, out var st))
                throw new CheckpointException(path, name, $"storage '{t.Storage.Key}' is missing (the {format}'s storage list does not name it)");
            Validate(path, name, t, st.ByteLength);
        }
        return new PyTorchCheckpointFile(path, null, "", fs, table, tensors);
    }

    private static object? LegacyPickle(string path, FileStream fs, string what, List<StorageRef>? storages)
    {
        var at = fs.Position;
        try
        {
            return RestrictedUnpickler.Load(fs, storages);
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointException(path, null, $"legacy torch.save format, {what} pickle at byte {at}: {e.Message}", e);
        }
    }

    /// <summary>The named tensors of a state dict (nested dicts flattened), or a clear error for anything else.</summary>
    private static List<KeyValuePair<string, TensorRef>> TensorsOf(string path, object? root)
    {
        var tensors = new List<KeyValuePair<string, TensorRef>>();
        switch (root)
        {
            case PyDict dict:
                Flatten(path, dict, "", tensors, 0);
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var (name, _) in tensors)
                    if (!seen.Add(name))
                        throw new CheckpointException(path, name, "tensor name appears twice after flattening nested dicts");
                return tensors;
            case TensorRef:
                throw new CheckpointException(path, null, "holds a single tensor, not a state dict of named tensors");
            default:
                throw new CheckpointException(path, null, $"holds {Describe(root)}, not a state dict of named tensors");
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

    /// <summary>Checks that the tensor's storage (a legacy storage view included) and view fit in the <paramref name="stored"/> bytes.</summary>
    private static void Validate(string path, string name, TensorRef t, long stored)
    {
        var es = DTypes.ElementSize(t.Storage.DType);
        long storageBytes;
        try
        {
            storageBytes = checked((t.Storage.ViewOffset + t.Storage.Numel) * es);
        }
        catch (OverflowException)
        {
            throw new CheckpointException(path, name, $"storage '{t.Storage.Key}' numel {t.Storage.Numel} is too large");
        }
        // torch 1.13 writes numel in elements; the stored length is authoritative when they disagree by being larger.
        if (stored < storageBytes)
            throw new CheckpointException(path, name,
                $"storage '{t.Storage.Key}' holds {stored} bytes, but {t.Storage.Numel} x {t.Storage.DType}" +
                (t.Storage.ViewOffset == 0 ? "" : $" at element {t.Storage.ViewOffset}") + $" needs {storageBytes}");
        var (_, last) = Span(t);
        // A legacy storage view starts ViewOffset elements in and ends where the view ends.
        var available = t.Storage.ViewOffset == 0 ? stored / es : t.Storage.Numel;
        if (last > available)
            throw new CheckpointException(path, name,
                $"view (offset {t.StorageOffset}, size [{string.Join(",", t.Size)}], stride [{string.Join(",", t.Stride)}]) " +
                $"reaches element {last - 1} of storage '{t.Storage.Key}', which has {available}");
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
                ObjectDisposedException.ThrowIf(_zip is null && _file is null, this);
                using var entryStream = _zip?.GetEntry(_prefix + "data/" + t.Storage.Key)!.Open();
                Stream stream;
                if (entryStream is not null)
                {
                    stream = entryStream;
                    SkipBytes(stream, first * es);
                }
                else
                {
                    stream = _file!;
                    stream.Position = _legacyStorages![t.Storage.Key].DataOffset + (t.Storage.ViewOffset + first) * es;
                }
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
            _file?.Dispose();
            _file = null;
        }
    }

    public override string ToString() =>
        $"torch {(IsLegacyFormat ? "legacy-format" : "zip")} checkpoint '{Path}' ({_tensors.Length} tensors)";
}
