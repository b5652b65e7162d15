using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Xml.Linq;
using BertHost.Tests.Support;

namespace BertHost.Tests.Client;

/// <summary><c>dotnet pack src/BertHost.Client</c> makes a NuGet package fit to publish: readme, licence, symbols, and no TorchSharp.</summary>
public sealed class ClientPackageTests
{
    [Fact]
    public async Task Pack_makes_a_package_with_readme_licence_xml_docs_and_symbols_that_needs_no_torchsharp()
    {
        // The client was built with this test assembly's configuration; pack what was built.
        var configuration = typeof(ClientPackageTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
        var output = Directory.CreateTempSubdirectory("berthost-pack-");
        try
        {
            var project = Path.Combine(TestPaths.RepoRoot, "src", "BertHost.Client", "BertHost.Client.csproj");
            var (exitCode, log) = await DotnetCli.RunAsync(DotnetCli.Executable,
                ["pack", project, "-c", configuration, "--no-build", "--no-restore", "-o", output.FullName, "-nologo"]);
            Assert.True(exitCode == 0, log);

            var package = Path.Combine(output.FullName, "BertHost.Client.1.0.0.nupkg");
            using (var zip = ZipFile.OpenRead(package))
            {
                var entries = zip.Entries.Select(e => e.FullName).ToList();
                Assert.Contains("README.md", entries);
                foreach (var framework in new[] { "net8.0", "net10.0" })
                {
                    Assert.Contains($"lib/{framework}/BertHost.Client.dll", entries);
                    Assert.Contains($"lib/{framework}/BertHost.Client.xml", entries);
                }
                using var reader = new StreamReader(zip.GetEntry("BertHost.Client.nuspec")!.Open());
                var nuspec = XDocument.Parse(await reader.ReadToEndAsync());
                var ns = nuspec.Root!.GetDefaultNamespace();
                var metadata = nuspec.Root.Element(ns + "metadata")!;
                var license = metadata.Element(ns + "license")!;
                Assert.Equal(("expression", "MIT"), ((string)license.Attribute("type")!, license.Value));
                Assert.Equal("README.md", metadata.Element(ns + "readme")!.Value);
                Assert.Equal(["net10.0", "net8.0"], metadata.Descendants(ns + "group").Select(g => (string)g.Attribute("targetFramework")!).Order());
                var dependencies = metadata.Descendants(ns + "dependency").Select(d => (string)d.Attribute("id")!).ToList();
                Assert.Contains("Microsoft.Extensions.AI.Abstractions", dependencies);
                Assert.Contains("Microsoft.Extensions.Http.Resilience", dependencies);
                Assert.DoesNotContain(dependencies, d => d.StartsWith("TorchSharp", StringComparison.Ordinal) || d.StartsWith("BertHost", StringComparison.Ordinal));
                var readme = new StreamReader(zip.GetEntry("README.md")!.Open()).ReadToEnd();
                Assert.Contains("AddBertHostClient", readme);
            }
            using (var symbols = ZipFile.OpenRead(Path.ChangeExtension(package, ".snupkg")))
                Assert.Equal(["lib/net10.0/BertHost.Client.pdb", "lib/net8.0/BertHost.Client.pdb"],
                    symbols.Entries.Select(e => e.FullName).Where(n => n.EndsWith(".pdb", StringComparison.Ordinal)).Order());
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }
}
