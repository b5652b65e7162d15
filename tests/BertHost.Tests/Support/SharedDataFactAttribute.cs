namespace BertHost.Tests.Support;

/// <summary>
/// A fact that needs a file or folder under ../shared. Where it is absent the test is reported as skipped with the
/// missing path as its reason (CI clones may lack ../shared), instead of failing or silently passing.
/// </summary>
public sealed class SharedDataFactAttribute : FactAttribute
{
    public SharedDataFactAttribute(string relativePath)
    {
        var path = TestPaths.SharedPath(relativePath);
        if (!File.Exists(path) && !Directory.Exists(path))
            Skip = $"needs {path}, which is absent";
    }
}

/// <summary>The theory counterpart of <see cref="SharedDataFactAttribute"/>.</summary>
public sealed class SharedDataTheoryAttribute : TheoryAttribute
{
    public SharedDataTheoryAttribute(string relativePath)
    {
        var path = TestPaths.SharedPath(relativePath);
        if (!File.Exists(path) && !Directory.Exists(path))
            Skip = $"needs {path}, which is absent";
    }
}
