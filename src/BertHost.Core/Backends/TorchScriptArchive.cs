using System.IO.Compression;
using System.Text;

namespace BertHost.Core.Backends;

/// <summary>
/// The archive <c>torch.jit.save</c> would write for a module whose code is given as TorchScript source and that holds
/// no tensors. TorchSharp binds none of libtorch's <c>mkldnn</c> or <c>quantized</c> operators, and TorchScript compiled
/// at run time reaches only <c>aten</c>; the importer of <c>torch.jit.load</c> resolves <c>ops.&lt;namespace&gt;</c>,
/// so kernels outside aten are reached through a module loaded from such an archive.
/// </summary>
internal static class TorchScriptArchive
{
    /// <param name="className">The module's class (<c>__torch__.&lt;className&gt;</c>).</param>
    /// <param name="source">The class's TorchScript source, as <c>code/__torch__.py</c> holds it.</param>
    /// <param name="emptyDicts">Attributes the source declares as typed dictionaries, each with its TorchScript type
    /// (e.g. <c>Dict[int, Tensor]</c>), restored empty.</param>
    public static byte[] Write(string className, string source, IReadOnlyDictionary<string, string>? emptyDicts = null)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            void Add(string name, byte[] data)
            {
                using var s = zip.CreateEntry(className.ToLowerInvariant() + "/" + name, CompressionLevel.NoCompression).Open();
                s.Write(data);
            }
            Add("version", "3\n"u8.ToArray());
            Add("byteorder", "little"u8.ToArray());
            // The importer wants the source to end with a newline.
            Add("code/__torch__.py", Encoding.UTF8.GetBytes(source.EndsWith('\n') ? source : source + "\n"));
            // Pickle (protocol 2) of an empty tuple, and of the module object: __torch__.<className>() with training=False.
            Add("constants.pkl", [0x80, 0x02, (byte)')', (byte)'.']);
            var data = new List<byte> { 0x80, 0x02, (byte)'c' };
            data.AddRange(Encoding.ASCII.GetBytes($"__torch__\n{className}\n"));
            data.AddRange([(byte)')', 0x81, (byte)'}', (byte)'(']);
            AddString(data, "training");
            data.Add(0x89); // NEWFALSE
            foreach (var (name, type) in emptyDicts ?? new Dictionary<string, string>())
            {
                // torch.jit._pickle.restore_type_tag({}, "<type>"): how torch.jit.save tags a typed container.
                AddString(data, name);
                data.Add((byte)'c');
                data.AddRange(Encoding.ASCII.GetBytes("torch.jit._pickle\nrestore_type_tag\n"));
                data.Add((byte)'}');
                AddString(data, type);
                data.AddRange([0x86, (byte)'R']); // TUPLE2, REDUCE
            }
            data.AddRange([(byte)'u', (byte)'b', (byte)'.']); // SETITEMS, BUILD, STOP
            Add("data.pkl", data.ToArray());
        }
        return buffer.ToArray();
    }

    /// <summary>BINUNICODE: 'X', a 4-byte little-endian length, the UTF-8 bytes.</summary>
    private static void AddString(List<byte> data, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        data.Add((byte)'X');
        data.AddRange(BitConverter.GetBytes(bytes.Length));
        data.AddRange(bytes);
    }
}
