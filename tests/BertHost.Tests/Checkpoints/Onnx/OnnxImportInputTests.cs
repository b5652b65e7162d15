using System.Runtime.Loader;
using System.Text;
using BertHost.Core.Checkpoints;
using BertHost.Core.Checkpoints.Onnx;
using BertHost.Tests.Support;

namespace BertHost.Tests.Checkpoints.Onnx;

/// <summary>
/// The graph and vocabulary read from where the SentenceTransformers packages keep them: manifest resources of a
/// .NET assembly, itself inside a .nupkg. The assemblies are built here (<see cref="ResourceAssembly"/>).
/// </summary>
public sealed class OnnxImportInputTests : IDisposable
{
    private const string Name = "Tiny.Models";
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-onnx-input-");
    private readonly byte[] _graph = File.ReadAllBytes(OnnxImportTests.Graph("tiny-bert-pooler-opset13"));
    private readonly byte[] _crlfVocab = Encoding.UTF8.GetBytes(File.ReadAllText(OnnxImportTests.Vocab).Replace("\n", "\r\n"));

    public void Dispose() => _dir.Delete(recursive: true);

    private byte[] ModelAssembly() => ResourceAssembly.Build(Name,
    [
        ($"{Name}.Resources.model.onnx", _graph),
        ($"{Name}.Resources.vocab.txt", _crlfVocab),
        ($"{Name}.Resources.notes.txt", "unrelated"u8.ToArray()),
    ]);

    [Fact]
    public void The_test_assembly_is_one_the_runtime_reads_resources_from()
    {
        // An independent reading of the built fixture: the runtime loads it (collectibly) and returns the resources.
        var context = new AssemblyLoadContext("resource-fixture", isCollectible: true);
        try
        {
            var assembly = context.LoadFromStream(new MemoryStream(ModelAssembly()));
            using var stream = assembly.GetManifestResourceStream($"{Name}.Resources.model.onnx")!;
            var copy = new MemoryStream();
            stream.CopyTo(copy);
            Assert.Equal(_graph, copy.ToArray());
        }
        finally
        {
            context.Unload();
        }
    }

    [Fact]
    public void An_assembly_and_a_package_give_the_folder_the_onnx_file_gives()
    {
        var dll = Path.Combine(_dir.FullName, $"{Name}.dll");
        File.WriteAllBytes(dll, ModelAssembly());
        var nupkg = Path.Combine(_dir.FullName, "tiny.models.1.0.0.nupkg");
        ResourceAssembly.WritePackage(nupkg, new Dictionary<string, byte[]>
        {
            ["tiny.models.nuspec"] = "<package/>"u8.ToArray(),
            // A library that is not a .NET assembly is passed over; one without the resources too.
            ["lib/netstandard2.1/A.Native.dll"] = [(byte)'M', (byte)'Z', 0, 0, 1, 2, 3],
            ["lib/netstandard2.1/B.Other.dll"] = ResourceAssembly.Build("B.Other", [("B.Other.readme.txt", "x"u8.ToArray())]),
            [$"lib/netstandard2.1/{Name}.dll"] = ModelAssembly(),
        });

        var reference = Path.Combine(_dir.FullName, "from-onnx");
        OnnxBertImporter.Import(new OnnxImportOptions(OnnxImportTests.Graph("tiny-bert-pooler-opset13"), reference, OnnxImportTests.Vocab));
        foreach (var (input, description) in new[]
                 {
                     (dll, $"{Name}.dll, resource {Name}.Resources.model.onnx"),
                     (nupkg, $"lib/netstandard2.1/{Name}.dll in tiny.models.1.0.0.nupkg, resource {Name}.Resources.model.onnx"),
                 })
        {
            var folder = Path.Combine(_dir.FullName, Path.GetExtension(input).TrimStart('.'));
            var result = OnnxBertImporter.Import(new OnnxImportOptions(input, folder));
            Assert.Equal(description, result.Source);
            foreach (var file in new[] { "config.json", "vocab.txt", "tokenizer_config.json" })
                Assert.Equal(File.ReadAllText(Path.Combine(reference, file)), File.ReadAllText(Path.Combine(folder, file)));
            var (expected, actual) = (Values(reference), Values(folder));
            Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
            foreach (var (key, values) in expected) Assert.Equal(values, actual[key]);
        }
    }

    [Fact]
    public void Assemblies_and_packages_without_a_model_are_named_in_the_error()
    {
        var dll = Path.Combine(_dir.FullName, "Empty.dll");
        File.WriteAllBytes(dll, ResourceAssembly.Build("Empty", [("Empty.readme.txt", "x"u8.ToArray())]));
        Assert.Equal("Empty.dll: no embedded resource named *.model.onnx (resources: Empty.readme.txt)", Error(dll));

        var twice = Path.Combine(_dir.FullName, "Twice.dll");
        File.WriteAllBytes(twice, ResourceAssembly.Build("Twice", [("A.model.onnx", _graph), ("B.model.onnx", _graph)]));
        Assert.Equal("Twice.dll: more than one resource named *.model.onnx (A.model.onnx, B.model.onnx); give the .onnx file itself", Error(twice));

        var noVocab = Path.Combine(_dir.FullName, "NoVocab.dll");
        File.WriteAllBytes(noVocab, ResourceAssembly.Build("NoVocab", [("NoVocab.model.onnx", _graph)]));
        Assert.Equal("NoVocab.dll, resource NoVocab.model.onnx: carries no vocabulary; give one with --vocab", Error(noVocab));

        var nupkg = Path.Combine(_dir.FullName, "empty.1.0.0.nupkg");
        ResourceAssembly.WritePackage(nupkg, new Dictionary<string, byte[]> { ["lib/net8.0/Empty.dll"] = File.ReadAllBytes(dll) });
        Assert.Equal("empty.1.0.0.nupkg: no lib/*/*.dll in the package has a resource named *.model.onnx (looked in lib/net8.0/Empty.dll)", Error(nupkg));

        var bare = Path.Combine(_dir.FullName, "bare.1.0.0.nupkg");
        ResourceAssembly.WritePackage(bare, new Dictionary<string, byte[]> { ["bare.nuspec"] = "<package/>"u8.ToArray() });
        Assert.Equal("bare.1.0.0.nupkg: the package has no lib/*/*.dll", Error(bare));

        var notAssembly = Path.Combine(_dir.FullName, "native.dll");
        File.WriteAllBytes(notAssembly, [(byte)'M', (byte)'Z', 0x90, 0, 3, 0, 0, 0]);
        Assert.StartsWith("native.dll: not a .NET assembly", Error(notAssembly));
    }

    private string Error(string input)
    {
        var e = Assert.Throws<OnnxImportException>(() => OnnxBertImporter.Import(new OnnxImportOptions(input, Path.Combine(_dir.FullName, "out"))));
        Assert.False(Directory.Exists(Path.Combine(_dir.FullName, "out")));
        return e.Message;
    }

    /// <summary>Every tensor's values by name (the safetensors metadata names the source, so the files differ there).</summary>
    private static Dictionary<string, float[]> Values(string folder)
    {
        using var source = CheckpointFiles.OpenFolder(folder);
        return source.Tensors.ToDictionary(t => t.Name, t =>
        {
            using var tensor = source.Read(t.Name);
            return tensor.data<float>().ToArray();
        });
    }
}
