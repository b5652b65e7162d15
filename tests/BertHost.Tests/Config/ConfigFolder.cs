using BertHost.Core.Config;

namespace BertHost.Tests.Config;

/// <summary>
/// A temp folder laid out like a deployment: <c>config/</c> (the YAML files), <c>models/bert</c> (config.json +
/// vocab.txt), <c>plugins/Foo/Foo.dll</c> (arbitrary bytes: enough for path and sha256 checks).
/// </summary>
public sealed class ConfigFolder : IDisposable
{
    public ConfigFolder()
    {
        Root = Path.Combine(Path.GetTempPath(), "berthost-config-" + Guid.NewGuid().ToString("N"));
        ConfigDir = Directory.CreateDirectory(Path.Combine(Root, "config")).FullName;
        Model = MakeModel("models/bert");
        Plugin = MakePlugin("plugins/Foo");
    }

    public string Root { get; }
    public string ConfigDir { get; }

    /// <summary>models/bert (max_position_embeddings 128).</summary>
    public string Model { get; }

    /// <summary>plugins/Foo (holding Foo.dll).</summary>
    public string Plugin { get; }

    public string PluginDll => Path.Combine(Plugin, "Foo.dll");

    public string PathOf(string relative) => Path.GetFullPath(Path.Combine(Root, relative));

    public string MakeModel(string relative, int maxPositions = 128)
    {
        var dir = Directory.CreateDirectory(PathOf(relative)).FullName;
        File.WriteAllText(Path.Combine(dir, "config.json"), $$"""{ "model_type": "bert", "hidden_size": 32, "max_position_embeddings": {{maxPositions}} }""");
        File.WriteAllText(Path.Combine(dir, "vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n");
        return dir;
    }

    public string MakePlugin(string relative, string content = "not really an assembly")
    {
        var dir = Directory.CreateDirectory(PathOf(relative)).FullName;
        File.WriteAllText(Path.Combine(dir, Path.GetFileName(dir) + ".dll"), content);
        return dir;
    }

    public string MakeWeights(string relative, string? configJson = null, string? headJson = null)
    {
        var dir = Directory.CreateDirectory(PathOf(relative)).FullName;
        if (configJson is not null) File.WriteAllText(Path.Combine(dir, "config.json"), configJson);
        if (headJson is not null) File.WriteAllText(Path.Combine(dir, "head.json"), headJson);
        return dir;
    }

    /// <summary>Writes <c>config/NAME</c> and returns its path.</summary>
    public string Write(string yaml, string name = "host.yaml")
    {
        var path = Path.Combine(ConfigDir, name);
        File.WriteAllText(path, yaml);
        return path;
    }

    public HostConfig Load(string yaml, Func<string, string?>? environment = null) =>
        HostConfigLoader.Load(Write(yaml), environment);

    public ConfigException Fail(string yaml, Func<string, string?>? environment = null) =>
        Assert.Throws<ConfigException>(() => Load(yaml, environment));

    /// <summary>The single problem a file has.</summary>
    public ConfigProblem Problem(string yaml, Func<string, string?>? environment = null) =>
        Assert.Single(Fail(yaml, environment).Problems);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
