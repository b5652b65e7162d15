using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Checkpoints;

/// <summary>
/// A <c>.safetensors</c> file: an 8-byte little-endian header length, a JSON header
/// (<c>{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {string: string}}</c>), then the
/// data area. The header is validated when the file is opened; tensor bytes are read (positional reads) straight into
/// each new tensor's storage, so every byte is read once and the file is never held in managed memory. Not a memory
/// map: mapped pages count in the process's resident set while the file is open, and at load that put the whole
/// checkpoint (90 MB for MiniLM) on top of the weights being built from it — the load was the process's peak.
/// </summary>
public sealed class SafetensorsFile : ITensorSource
{
    /// <summary>Largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    private const string MetadataKey = "__metadata__";

    private readonly object _gate = new(); // Read vs Dispose: never read from a closed handle
    private readonly Dictionary<string, Entry> _entries;
    private readonly TensorInfo[] _tensors;
    private readonly long _dataStart;
    private SafeFileHandle? _file;

    private readonly record struct Entry(TensorInfo Info, long Begin, long End);

    private SafetensorsFile(string path, Dictionary<string, Entry> entries, TensorInfo[] tensors,
        IReadOnlyDictionary<string, string> metadata, long dataStart, SafeFileHandle file)
    {
        Path = path;
        _entries = entries;
        _tensors = tensors;
        Metadata = metadata;
        _dataStart = dataStart;
        _file = file;
    }

    /// <summary>The full path of the file.</summary>
    public string Path { get; }

    public string Description => Path;

    /// <summary>The <c>__metadata__</c> entries (empty when the file has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The tensors in data-offset order.</summary>
    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>Opens and validates a safetensors file.</summary>
    /// <exception cref="CheckpointException">The file is absent, truncated, or its header is malformed or inconsistent.</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new CheckpointException(path, null, "file not found");

        SafeFileHandle? file = null;
        try
        {
            file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
            var fileLength = RandomAccess.GetLength(file);
            if (fileLength < 8)
                throw new CheckpointException(path, null, $"file is {fileLength} bytes, too short for a safetensors header length (8 bytes)");
            Span<byte> lenBytes = stackalloc byte[8];
            ReadExactly(file, lenBytes, 0);
            var headerLength = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
            if (headerLength < 2 || headerLength > MaxHeaderBytes || headerLength > (ulong)(fileLength - 8))
                throw new CheckpointException(path, null,
                    $"header length {headerLength} is not sane for a file of {fileLength} bytes " +
                    $"(must be 2..{Math.Min(MaxHeaderBytes, fileLength - 8)}); not a safetensors file, or truncated");
            var header = new byte[headerLength];
            ReadExactly(file, header, 8);
            var dataStart = 8 + (long)headerLength;
            var dataLength = fileLength - dataStart;

            var (entries, ordered, metadata) = ParseHeader(path, header, dataLength);

            return new SafetensorsFile(path, entries, ordered, metadata, dataStart, file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            file?.Dispose();
            throw new CheckpointException(path, null, $"cannot read file: {e.Message}", e);
        }
        catch
        {
            file?.Dispose();
            throw;
        }
    }

    /// <summary>Fills <paramref name="destination"/> from <paramref name="offset"/>; a file that ends first was truncated under us.</summary>
    private static void ReadExactly(SafeFileHandle file, Span<byte> destination, long offset)
    {
        while (destination.Length > 0)
        {
            var read = RandomAccess.Read(file, destination, offset);
            if (read == 0) throw new EndOfStreamException($"the file ended at byte {offset}, before its header or data said it would");
            destination = destination[read..];
            offset += read;
        }
    }

    private static (Dictionary<string, Entry>, TensorInfo[], IReadOnlyDictionary<string, string>) ParseHeader(
        string path, byte[] header, long dataLength)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.AsMemory().TrimEnd((byte)0));
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, null, $"header is not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException(path, null, $"header must be a JSON object, found {doc.RootElement.ValueKind}");

            var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var sawMetadata = false;
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == MetadataKey)
                {
                    if (sawMetadata) throw new CheckpointException(path, null, "header has '__metadata__' twice");
                    sawMetadata = true;
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new CheckpointException(path, null, $"'__metadata__' must be an object of strings, found {prop.Value.ValueKind}");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                            throw new CheckpointException(path, null, $"'__metadata__' value '{m.Name}' must be a string, found {m.Value.ValueKind}");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                if (entries.ContainsKey(prop.Name))
                    throw new CheckpointException(path, prop.Name, "tensor name appears twice in the header");
                entries[prop.Name] = ParseEntry(path, prop, dataLength);
            }

            // Data ranges must not overlap (zero-length tensors take no room and may sit anywhere in the data area).
            var ordered = entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.End).ToArray();
            Entry? previous = null;
            foreach (var e in ordered)
            {
                if (e.End == e.Begin) continue;
                if (previous is { } p && e.Begin < p.End)
                    throw new CheckpointException(path, e.Info.Name,
                        $"data_offsets [{e.Begin}, {e.End}] overlap tensor '{p.Info.Name}' at [{p.Begin}, {p.End}]");
                previous = e;
            }
            return (entries, ordered.Select(e => e.Info).ToArray(), metadata);
        }
    }

    private static Entry ParseEntry(string path, JsonProperty prop, long dataLength)
    {
        var name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object)
            throw new CheckpointException(path, name, $"header entry must be an object, found {v.ValueKind}");
        if (!v.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String)
            throw new CheckpointException(path, name, "header entry has no string 'dtype'");
        var dtype = dtypeEl.GetString()!;
        if (!DTypes.IsSupported(dtype))
            throw new CheckpointException(path, name, $"unknown or unsupported dtype '{dtype}' (supported: {string.Join(", ", DTypes.Names)})");

        if (!v.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array)
            throw new CheckpointException(path, name, "header entry has no 'shape' array");
        var shape = new long[shapeEl.GetArrayLength()];
        var i = 0;
        foreach (var d in shapeEl.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim) || dim < 0)
                throw new CheckpointException(path, name, $"shape {shapeEl.GetRawText()} must hold non-negative integers");
            shape[i++] = dim;
        }

        if (!v.TryGetProperty("data_offsets", out var offEl) || offEl.ValueKind != JsonValueKind.Array || offEl.GetArrayLength() != 2)
            throw new CheckpointException(path, name, "header entry has no 'data_offsets' [begin, end] pair");
        if (!offEl[0].TryGetInt64(out var begin) || !offEl[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw new CheckpointException(path, name, $"data_offsets {offEl.GetRawText()} must be integers with 0 <= begin <= end");
        if (end > dataLength)
            throw new CheckpointException(path, name,
                $"data_offsets [{begin}, {end}] run past the end of the data area ({dataLength} bytes): the file is truncated or the header is wrong");

        var info = new TensorInfo(name, dtype, shape);
        long expected;
        try
        {
            expected = checked(info.ElementCount * DTypes.ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw new CheckpointException(path, name, $"shape [{string.Join(",", shape)}] is too large");
        }
        if (end - begin != expected)
            throw new CheckpointException(path, name,
                $"data_offsets [{begin}, {end}] span {end - begin} bytes, but {dtype}[{string.Join(",", shape)}] needs {expected}");
        return new Entry(info, begin, end);
    }

    /// <summary>Reads one tensor (thread-safe; reads are serialised with each other and with <see cref="Dispose"/>).</summary>
    public Tensor Read(string name)
    {
        var e = EntryOf(name);
        var t = torch.empty(e.Info.Shape, DTypes.ToScalarType(e.Info.DType));
        try
        {
            Fill(name, e, t);
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads straight into <paramref name="destination"/> where it is a contiguous CPU tensor of the stored dtype and
    /// shape (a model's parameter as it is loaded), else as <see cref="ITensorSource.ReadInto"/> does.
    /// </summary>
    public void ReadInto(string name, Tensor destination)
    {
        var e = EntryOf(name);
        if (destination.device_type == DeviceType.CPU && destination.is_contiguous() && destination.dtype == DTypes.ToScalarType(e.Info.DType)
            && destination.shape.SequenceEqual(e.Info.Shape))
        {
            Fill(name, e, destination);
            return;
        }
        using var tensor = Read(name);
        destination.copy_(tensor);
    }

    private Entry EntryOf(string name) =>
        _entries.TryGetValue(name, out var e) ? e : throw new CheckpointException(Path, name, "no such tensor in the file");

    private void Fill(string name, Entry e, Tensor destination)
    {
        try
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_file is null, this);
                var file = _file;
                TensorBytes.Fill(destination, (offset, span) => ReadExactly(file, span, _dataStart + e.Begin + offset));
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(Path, name, $"cannot read tensor data: {ex.Message}", ex);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _file?.Dispose();
            _file = null;
        }
    }

    public override string ToString() => $"safetensors '{Path}' ({_tensors.Length} tensors)";
}
