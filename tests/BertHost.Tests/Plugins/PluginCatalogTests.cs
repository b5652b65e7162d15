using System.Runtime.Loader;
using BertHost.Abstractions.Heads;
using BertHost.Core.Plugins;
using BertHost.Core.Text;
using Microsoft.Extensions.Logging.Abstractions;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Plugins;

public class PluginCatalogTests
{
    [Fact]
    public void The_classification_plugin_loads_from_its_project_folder_into_its_own_context_sharing_the_hosts_contract_and_TorchSharp()
    {
        using var catalog = new PluginCatalog(NullLogger.Instance);
        var kind = catalog.Resolve(ClassificationPlugin, null, "text-classification");

        Assert.Equal("text-classification", kind.Kind.Name);
        Assert.Equal(PluginPaths.Sha256Of(kind.AssemblyPath), kind.Sha256);
        Assert.StartsWith(Path.Combine(ClassificationPlugin, "bin"), kind.AssemblyPath);
        Assert.EndsWith(Path.Combine("net10.0", "BertHost.Heads.Classification.dll"), kind.AssemblyPath);

        var context = AssemblyLoadContext.GetLoadContext(kind.Kind.GetType().Assembly)!;
        Assert.NotSame(AssemblyLoadContext.Default, context);
        // The plugin's view of the contract and of TorchSharp is the host's: one copy of each in the process.
        Assert.IsAssignableFrom<IHeadKind>(kind.Kind);
        Assert.Single(AppDomain.CurrentDomain.GetAssemblies(), a => a.GetName().Name == "TorchSharp");
        Assert.Single(AppDomain.CurrentDomain.GetAssemblies(), a => a.GetName().Name == "BertHost.Abstractions");
        var pluginTensor = kind.Kind.GetType().Assembly.GetReferencedAssemblies().Single(a => a.Name == "TorchSharp");
        Assert.Same(typeof(Tensor).Assembly, context.LoadFromAssemblyName(pluginTensor));
    }

    [Theory]
    [InlineData("plugins/BertHost.Heads.Classification")]
    [InlineData("tests/Plugins/BertHost.TestHeads")]
    public void A_plugin_build_output_carries_no_TorchSharp_libtorch_or_contract_copies(string project)
    {
        var dll = PluginPaths.ResolveAssembly(Path.Combine(Support.TestPaths.RepoRoot, project), out var looked);
        Assert.True(dll is not null, $"plugin not built: looked for {looked}");
        var files = Directory.GetFiles(Path.GetDirectoryName(dll)!, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Path.GetDirectoryName(dll)!, f)).ToList();
        Assert.DoesNotContain(files, f => f.Contains("TorchSharp", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(files, f => f.Contains("libtorch", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".so") || f.EndsWith(".dylib"));
        Assert.DoesNotContain(files, f => f.Contains("BertHost.Abstractions") || f.Contains("SkiaSharp") || f.Contains("Logging"));
        Assert.DoesNotContain(files, f => f.StartsWith("runtimes"));
        var name = Path.GetFileNameWithoutExtension(dll);
        Assert.All(files, f => Assert.StartsWith(name, f));
    }

    [Fact]
    public void The_sha256_pin_is_checked_before_loading_in_any_spelling()
    {
        using var catalog = new PluginCatalog(NullLogger.Instance);
        var dll = PluginPaths.ResolveAssembly(TestHeadsPlugin, out _)!;
        var sha = PluginPaths.Sha256Of(dll);
        var wrong = new string('0', 64);

        var e = Assert.Throws<PluginLoadException>(() => catalog.Resolve(TestHeadsPlugin, wrong, "echo-cls"));
        Assert.Contains("sha256 mismatch", e.Message);
        Assert.Contains(wrong, e.Message);
        Assert.Contains(sha, e.Message);
        Assert.Contains(dll, e.Message);

        Assert.Equal("echo-cls", catalog.Resolve(TestHeadsPlugin, sha, "echo-cls").Kind.Name);
        Assert.Equal("echo-cls", catalog.Resolve(TestHeadsPlugin, "sha256:" + sha.ToUpperInvariant(), "echo-cls").Kind.Name);
        // Once loaded, a wrong pin is still refused.
        Assert.Throws<PluginLoadException>(() => catalog.Resolve(TestHeadsPlugin, wrong, "echo-cls"));
    }

    [Fact]
    public void A_missing_plugin_says_where_it_looked()
    {
        using var catalog = new PluginCatalog(NullLogger.Instance);
        var folder = Path.Combine(TempFolder(), "Acme.Heads");
        var e = Assert.Throws<PluginLoadException>(() => catalog.Resolve(folder, null, "x"));
        Assert.Contains("no assembly found", e.Message);
        Assert.Contains(Path.Combine(folder, "Acme.Heads.dll"), e.Message);
        Assert.Contains(Path.Combine(folder, "bin", "<Release|Debug>"), e.Message);

        var dll = Path.Combine(TempFolder(), "Missing.dll");
        Assert.Contains(dll, Assert.Throws<PluginLoadException>(() => catalog.Resolve(dll, null, "x")).Message);
    }

    [Fact]
    public void A_file_that_is_not_an_assembly_fails_with_the_loaders_message_and_other_plugins_keep_loading()
    {
        using var catalog = new PluginCatalog(NullLogger.Instance);
        var dll = Path.Combine(TempFolder(), "Garbage.dll");
        File.WriteAllBytes(dll, [0x4d, 0x5a, 1, 2, 3, 4, 5, 6, 7, 8]);

        var e = Assert.Throws<PluginLoadException>(() => catalog.Resolve(dll, null, "x"));
        Assert.Contains("could not be loaded", e.Message);
        Assert.Contains(dll, e.Message);
        Assert.NotNull(e.InnerException);
        Assert.Contains(e.InnerException!.Message, e.Message);

        var dup = Assert.Throws<PluginLoadException>(() => catalog.Resolve(DuplicatePlugin, null, "same-name"));
        Assert.Contains("offers head kind 'same-name' twice", dup.Message);
        Assert.Contains("FirstSameName", dup.Message);
        Assert.Contains("SecondSameName", dup.Message);

        Assert.Equal("text-classification", catalog.Resolve(ClassificationPlugin, null, "text-classification").Kind.Name);
        Assert.Equal("echo-cls", catalog.Resolve(TestHeadsPlugin, null, "echo-cls").Kind.Name);
    }

    [Fact]
    public void An_unknown_kind_lists_what_the_plugin_offers_and_the_types_that_failed_to_construct()
    {
        using var catalog = new PluginCatalog(NullLogger.Instance);
        var e = Assert.Throws<PluginLoadException>(() => catalog.Resolve(TestHeadsPlugin, null, "sentiment"));
        Assert.Contains("no head kind 'sentiment' in BertHost.TestHeads.dll", e.Message);
        Assert.Contains("it offers: echo-cls, throws-in-create, throws-in-forward", e.Message);
        Assert.Contains("ThrowsInConstructorKind threw InvalidOperationException: this kind is broken on purpose (constructor)", e.Message);
        Assert.Contains("NeedsArgumentKind implements IHeadKind but has no public parameterless constructor", e.Message);
        Assert.DoesNotContain("abstract", e.Message);

        var kinds = catalog.KindsIn(TestHeadsPlugin, null);
        Assert.Equal(["echo-cls", "throws-in-create", "throws-in-forward"], kinds.Select(k => k.Kind.Name));
        Assert.Same(kinds[0].Kind, catalog.Resolve(TestHeadsPlugin, null, "echo-cls").Kind);   // loaded once
    }

    [Fact]
    public void A_kind_that_throws_in_Create_fails_only_its_head()
    {
        var body = TinyBert;
        var bug = Assert.Throws<HeadConfigurationException>(() => Kind(TestHeadsPlugin, "throws-in-create").CreateHead(Context(body, "throws-in-create", "broken")));
        Assert.Equal("kind", bug.Field);
        Assert.Contains("head kind 'throws-in-create'", bug.Message);
        Assert.Contains("BertHost.TestHeads.dll", bug.Message);
        Assert.Contains("failed to create head 'broken': NullReferenceException: a bug inside the plugin's Create", bug.Message);
        // The plugin's own exception stays inside, with its stack trace, for the host's log.
        Assert.IsType<NullReferenceException>(bug.InnerException);
        Assert.Contains("BertHost.TestHeads.ThrowsInCreateKind.Create", bug.InnerException!.StackTrace);

        var config = Assert.Throws<HeadConfigurationException>(() =>
            Kind(TestHeadsPlugin, "throws-in-create").CreateHead(Context(body, "throws-in-create", options: """{"mode": "config"}""")));
        Assert.Equal("options.mode", config.Field);

        using var head = Kind(TestHeadsPlugin, "echo-cls").CreateHead(Context(body, "echo-cls", "echo"));
        Assert.Equal("echo", head.Name);
    }

    [Fact]
    public void A_head_that_throws_in_Forward_leaves_the_body_output_and_other_heads_working()
    {
        var body = TinyBert;
        using var failing = Kind(TestHeadsPlugin, "throws-in-forward").CreateHead(Context(body, "throws-in-forward", "bad"));
        using var echo = Kind(TestHeadsPlugin, "echo-cls").CreateHead(Context(body, "echo-cls", "echo", options: """{"dims": 3}"""));

        var features = new[] { echo.Encode(Json("\"the dog is happy\""), NoParameters), echo.Encode(Json("""{"text": "she said no"}"""), NoParameters) };
        var batch = new HeadBatch(features, body.Device);
        using var output = body.Forward(PaddedBatch.Create(features.SelectMany(f => f.Sequences).ToList(), 0));

        var e = Assert.Throws<InvalidOperationException>(() => failing.Forward(output, batch));
        Assert.Contains("on purpose", e.Message);

        using var logits = echo.Forward(output, batch);
        var results = echo.Decode(logits, batch);
        Assert.Equal(6, (int)results[0]!["tokens"]!);
        Assert.Equal(5, (int)results[1]!["tokens"]!);
        using var cls = output.LastHiddenState.select(1, 0).narrow(1, 0, 3).contiguous();
        var expected = cls.data<float>().ToArray();
        Assert.Equal(expected[..3], results[0]!["cls"]!.AsArray().Select(v => (float)v!));
        Assert.Equal(expected[3..], results[1]!["cls"]!.AsArray().Select(v => (float)v!));
    }
}
