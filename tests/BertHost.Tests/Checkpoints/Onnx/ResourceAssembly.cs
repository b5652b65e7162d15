using System.IO.Compression;
using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace BertHost.Tests.Checkpoints.Onnx;

/// <summary>
/// Builds, at test time, what the SentenceTransformers packages are: a .NET assembly whose only content is manifest
/// resources (written with System.Reflection.Metadata's MetadataBuilder and ManagedPEBuilder, as a compiler would lay
/// them out), and a .nupkg (zip) carrying it under lib/netstandard2.1/.
/// </summary>
public static class ResourceAssembly
{
    public static byte[] Build(string assemblyName, IReadOnlyList<(string Name, byte[] Data)> resources)
    {
        var metadata = new MetadataBuilder();
        metadata.AddModule(0, metadata.GetOrAddString(assemblyName + ".dll"), metadata.GetOrAddGuid(new Guid("6a1f0b8e-2f5c-4d2e-9a43-0c1d2e3f4a5b")), default, default);
        metadata.AddAssembly(metadata.GetOrAddString(assemblyName), new Version(1, 0, 0, 0), default, default, default, AssemblyHashAlgorithm.Sha1);
        metadata.AddTypeDefinition(default, default, metadata.GetOrAddString("<Module>"), default,
            MetadataTokens.FieldDefinitionHandle(1), MetadataTokens.MethodDefinitionHandle(1));
        var data = new BlobBuilder();
        foreach (var (name, bytes) in resources)
        {
            metadata.AddManifestResource(ManifestResourceAttributes.Public, metadata.GetOrAddString(name), default, (uint)data.Count);
            data.WriteInt32(bytes.Length);
            data.WriteBytes(bytes);
            data.Align(8);
        }
        var pe = new ManagedPEBuilder(PEHeaderBuilder.CreateLibraryHeader(), new MetadataRootBuilder(metadata), new BlobBuilder(), managedResources: data);
        var image = new BlobBuilder();
        pe.Serialize(image);
        return image.ToArray();
    }

    /// <summary>A .nupkg with the given entries (path inside the package → bytes).</summary>
    public static void WritePackage(string path, IReadOnlyDictionary<string, byte[]> entries)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (name, bytes) in entries)
        {
            using var stream = zip.CreateEntry(name).Open();
            stream.Write(bytes);
        }
    }
}
