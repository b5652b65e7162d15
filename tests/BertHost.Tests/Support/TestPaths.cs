namespace BertHost.Tests.Support;

/// <summary>Locations tests read from: committed fixtures (copied next to the test assembly) and ../shared.</summary>
public static class TestPaths
{
    /// <summary>The repository root: the nearest ancestor of the test assembly that holds BertHost.sln.</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>Committed fixtures, copied to the output folder by the test project.</summary>
    public static string Fixtures { get; } = Path.Combine(AppContext.BaseDirectory, "Fixtures");

    /// <summary>The workplace's shared folder beside the checkout (models without weights, datasets).</summary>
    public static string Shared { get; } = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    public static string Fixture(params string[] parts) => Path.Combine([Fixtures, .. parts]);

    public static string SharedPath(params string[] parts) => Path.Combine([Shared, .. parts]);

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "BertHost.sln"))) return dir.FullName;
        throw new InvalidOperationException($"BertHost.sln not found above {AppContext.BaseDirectory}");
    }
}
