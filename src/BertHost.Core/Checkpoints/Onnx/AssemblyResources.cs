using System.Collections.Immutable;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;

namespace BertHost.Core.Checkpoints.Onnx;

/// <summary>
/// The manifest resources embedded in a .NET assembly, read from its bytes with System.Reflection.Metadata: the
/// assembly is never loaded, so none of its code can run.
/// </summary>
public sealed class AssemblyResources : IDisposable
{
    private readonly PEReader _pe;
    private readonly MetadataReader _metadata;
    private readonly Dictionary<string, ManifestResource> _embedded = new(StringComparer.Ordinal);

    private AssemblyResources(string description, byte[] image)
    {
        Description = description;
        _pe = new PEReader(ImmutableCollectionsMarshal.AsImmutableArray(image));
        try
        {
            if (!_pe.HasMetadata) throw new OnnxImportException($"{description}: not a .NET assembly (no CLI metadata)");
            _metadata = _pe.GetMetadataReader();
            foreach (var handle in _metadata.ManifestResources)
            {
                var resource = _metadata.GetManifestResource(handle);
                // A nil implementation means the data is in this file; others point to linked files or assemblies.
                if (resource.Implementation.IsNil) _embedded[_metadata.GetString(resource.Name)] = resource;
            }
        }
        catch (BadImageFormatException e)
        {
            _pe.Dispose();
            throw new OnnxImportException($"{description}: not a .NET assembly ({e.Message})");
        }
        catch
        {
            _pe.Dispose();
            throw;
        }
    }

    public string Description { get; }

    /// <summary>Names of the resources embedded in the assembly, in ordinal order.</summary>
    public IReadOnlyList<string> Names => _embedded.Keys.Order(StringComparer.Ordinal).ToList();

    /// <summary>Reads an assembly image (a whole .dll file's bytes).</summary>
    public static AssemblyResources Open(string description, byte[] image) => new(description, image);

    /// <summary>The resource's bytes: in the CLI resources section at the resource's offset, after a 4-byte length.</summary>
    public byte[] Read(string name)
    {
        if (!_embedded.TryGetValue(name, out var resource)) throw new OnnxImportException($"{Description}: no embedded resource '{name}'");
        try
        {
            var directory = _pe.PEHeaders.CorHeader!.ResourcesDirectory;
            var section = _pe.GetSectionData(directory.RelativeVirtualAddress);
            if (resource.Offset < 0 || resource.Offset > directory.Size - sizeof(int) || directory.Size > section.Length)
                throw new BadImageFormatException($"resource offset {resource.Offset} lies outside the resources directory");
            var reader = section.GetReader((int)resource.Offset, directory.Size - (int)resource.Offset);
            var length = reader.ReadInt32();
            if (length < 0 || length > reader.RemainingBytes)
                throw new BadImageFormatException($"resource length {length} runs past the resources directory");
            return reader.ReadBytes(length);
        }
        catch (BadImageFormatException e)
        {
            throw new OnnxImportException($"{Description}: resource '{name}' cannot be read ({e.Message})");
        }
    }

    public void Dispose() => _pe.Dispose();
}
