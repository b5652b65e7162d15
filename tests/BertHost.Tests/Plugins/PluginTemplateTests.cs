using System.Reflection;
using System.Text.Json;
using BertHost.Abstractions.Heads;
using BertHost.Cli;
using BertHost.Core.Config;
using BertHost.Core.Serving;
using BertHost.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using static BertHost.Tests.Plugins.HeadTestSupport;

namespace BertHost.Tests.Plugins;

/// <summary>
/// A plugin author's path, outside the repository: pack the contract into a folder feed, install the
/// <c>berthost-head</c> template, create a plugin with it, build it against the package, and serve, validate, train
/// and save it in a host. It runs the dotnet CLI (pack, new, build with a restore): about a minute.
/// </summary>
public sealed class PluginTemplateTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("berthost-template-");

    public void Dispose() => _root.Delete(recursive: true);

    private string Under(params string[] parts) => Path.Combine([_root.FullName, .. parts]);

    private static async Task Dotnet(params string[] arguments)
    {
        var (exitCode, log) = await DotnetCli.RunAsync(DotnetCli.Executable, arguments, timeout: TimeSpan.FromMinutes(4));
        Assert.True(exitCode == 0, $"dotnet {string.Join(' ', arguments)} failed ({exitCode}):\n{log}");
    }

    [Fact]
    public async Task A_plugin_made_from_the_template_builds_against_the_package_and_serves_trains_and_saves_in_a_host()
    {
        Assert.False(_root.FullName.StartsWith(TestPaths.RepoRoot, StringComparison.Ordinal));   // no Directory.Build.props of ours applies
        // The contract as it was built for these tests, packed into a local feed.
        var configuration = typeof(PluginTemplateTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
        await Dotnet("pack", Path.Combine(TestPaths.RepoRoot, "src", "BertHost.Abstractions", "BertHost.Abstractions.csproj"),
            "-c", configuration, "--no-build", "--no-restore", "-o", Under("feed"), "-nologo");

        // The template, installed into a private hive (the machine's template list is left alone).
        var hive = Under("hive");
        await Dotnet("new", "install", Path.Combine(TestPaths.RepoRoot, "templates", "berthost-head"), "--debug:custom-hive", hive);
        var work = Under("work");
        await Dotnet("new", "berthost-head", "-n", "Acme.Heads.Rating", "--kind", "rating", "-o", work, "--debug:custom-hive", hive);

        // Restore from the feed; everything else from the machine's configured sources, reusing its package cache
        // read-only, with a private packages folder so that this package never shadows a cached one.
        var machineCache = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        await File.WriteAllTextAsync(Path.Combine(work, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <config><add key="globalPackagesFolder" value="{Under("packages")}" /></config>
              <fallbackPackageFolders><add key="machine" value="{machineCache}" /></fallbackPackageFolders>
              <packageSources><add key="berthost-local" value="{Under("feed")}" /></packageSources>
            </configuration>
            """);
        await Dotnet("build", Path.Combine(work, "Acme.Heads.Rating.Tests"), "-c", "Release", "-nologo");
        await Dotnet("test", Path.Combine(work, "Acme.Heads.Rating.Tests"), "-c", "Release", "--no-build", "-nologo");

        // The plugin's output holds the plugin alone: the contract and TorchSharp are the host's.
        var plugin = Path.Combine(work, "Acme.Heads.Rating");
        var output = Path.Combine(plugin, "bin", "Release", "net10.0");
        Assert.True(File.Exists(Path.Combine(output, "Acme.Heads.Rating.dll")));
        Assert.Empty(Directory.GetFiles(output, "*.dll").Select(Path.GetFileName).Where(f => f != "Acme.Heads.Rating.dll"));

        // validate loads it and checks the head's options.
        var config = Path.Combine(work, "deploy.yaml");
        await File.WriteAllTextAsync(config, $$"""
            body: { checkpoint: {{ReferenceOutputs.ModelFolder("tiny-bert")}} }
            heads:
              - { name: score, kind: rating, plugin: {{plugin}}, options: { pooling: cls, dropout: "high" } }
            """);
        var invalid = await CliRunner.RunAsync("validate", "--config", config);
        Assert.Equal(CliApp.ExitFailure, invalid.ExitCode);
        Assert.Contains("heads[0].options.dropout: options.dropout must be a number, got the string \"high\"", invalid.Error);
        await File.WriteAllTextAsync(config, (await File.ReadAllTextAsync(config)).Replace("dropout: \"high\"", "dropout: 0.0"));
        Assert.Equal(CliApp.ExitOk, (await CliRunner.RunAsync("validate", "--config", config)).ExitCode);

        // served by the engine like a built-in head
        var deployment = HostConfigLoader.Load(config);
        await using (var engine = InferenceEngine.Start(deployment, NullLoggerFactory.Instance, new ServingMetrics()))
        {
            var outputs = await engine.PredictAsync("score", [Json("\"a gripping film\""), Json("""{"text": "a", "text_pair": "b"}""")], NoParameters, default);
            Assert.All(outputs, o => Assert.True(double.IsFinite(o["score"]!.GetValue<double>())));
            var refused = await Assert.ThrowsAsync<ServingException>(() => engine.PredictAsync("score", [Json("""{"txt": "a"}""")], NoParameters, default));
            Assert.Equal("inputs[0].txt", refused.Field);
        }

        // trained (its data reader and loss) and saved, then loaded from the head folder with the same scores
        var kind = Kind(plugin, "rating");
        using var head = kind.CreateHead(Context(TinyBert, kind: "rating", options: """{"pooling": "cls", "dropout": 0.0}"""));
        var data = Under("train.jsonl");
        await File.WriteAllLinesAsync(data, ["""{"text": "great", "score": 5}""", """{"text": "awful", "text_pair": "really", "score": 1}"""]);
        var examples = head.Training!.ReadExamples(data, new TrainingDataOptions()).ToList();
        Assert.Equal([5f, 1f], examples.Select(e => (float)e.State!));
        var (batch, logits) = Run(TinyBert, head, examples);
        using (logits)
        using (var loss = head.Training.Loss(logits, batch))
        {
            var scores = logits.data<float>().ToArray();
            Assert.Equal(((scores[0] - 5) * (scores[0] - 5) + (scores[1] - 1) * (scores[1] - 1)) / 2, loss.item<float>(), 3);
        }
        var before = Predict(TinyBert, head, "\"a gripping film\"")[0]!["score"]!.GetValue<double>();
        var saved = Under("saved");
        head.Save(saved, new HeadSaveInfo(TinyBert.Fingerprint));
        Assert.Equal(TinyBert.Fingerprint, head.TrainedOnFingerprint);
        using var reloaded = kind.CreateHead(Context(TinyBert, kind: "rating", weights: saved));
        Assert.Equal("head-folder", (string)reloaded.Describe()["weights"]!);
        Assert.Equal(before, Predict(TinyBert, reloaded, "\"a gripping film\"")[0]!["score"]!.GetValue<double>(), 5);
    }
}
