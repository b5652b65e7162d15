using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Checkpoints;

/// <summary>Writes <c>.safetensors</c> files.</summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// Writes the tensors to <paramref name="path"/> atomically: a temporary file in the same folder is written,
    /// flushed, then renamed over the target, so readers never see a partial file. Tensors may be on any device, of
    /// any supported dtype, and need not be contiguous (contiguous CPU copies are made one at a time). Names are
    /// written sorted (ordinal), data in the same order with contiguous offsets, the header padded with spaces to a
    /// multiple of 8 bytes; <c>__metadata__</c> is written when <paramref name="metadata"/> is given.
    /// </summary>
    /// <exception cref="ArgumentException">Duplicate or empty names, the reserved name "__metadata__", or an unsupported dtype.</exception>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("safetensors writing needs a little-endian machine");

        var items = new SortedDictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            if (string.IsNullOrEmpty(name)) throw new ArgumentException("a tensor name is empty", nameof(tensors));
            if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor", nameof(tensors));
            ArgumentNullException.ThrowIfNull(tensor, $"tensor '{name}'");
            if (!items.TryAdd(name, tensor)) throw new ArgumentException($"duplicate tensor name '{name}'", nameof(tensors));
        }

        var header = BuildHeader(items, metadata);
        path = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(path)!;
        Directory.CreateDirectory(folder);
        var temp = Path.Combine(folder, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
                fs.Write(len);
                fs.Write(header);
                foreach (var (name, tensor) in items)
                {
                    using var scope = torch.NewDisposeScope();
                    var t = tensor.detach();
                    if (t.device_type != DeviceType.CPU) t = t.cpu();
                    if (!t.is_contiguous()) t = t.contiguous();
                    TensorBytes.WriteTo(t, fs);
                }
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Writes a whole module state (for example <c>module.state_dict()</c>).</summary>
    public static void Save(string path, IDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, (IEnumerable<KeyValuePair<string, Tensor>>)tensors, metadata);

    private static byte[] BuildHeader(SortedDictionary<string, Tensor> items, IReadOnlyDictionary<string, string>? metadata)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is not null)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    w.WriteString(k, v ?? throw new ArgumentException($"metadata value '{k}' is null", nameof(metadata)));
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, tensor) in items)
            {
                string dtype;
                try
                {
                    dtype = DTypes.FromScalarType(tensor.dtype);
                }
                catch (ArgumentException e)
                {
                    throw new ArgumentException($"tensor '{name}': {e.Message}", nameof(items), e);
                }
                var bytes = checked(tensor.numel() * DTypes.ElementSize(dtype));
                w.WriteStartObject(name);
                w.WriteString("dtype", dtype);
                w.WriteStartArray("shape");
                foreach (var d in tensor.shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }
            w.WriteEndObject();
        }
        var length = (int)ms.Length;
        var padded = (length + 7) / 8 * 8;
        var header = new byte[padded];
        ms.GetBuffer().AsSpan(0, length).CopyTo(header);
        header.AsSpan(length).Fill((byte)' ');
        return header;
    }
}
