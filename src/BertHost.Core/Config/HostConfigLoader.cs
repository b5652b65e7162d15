namespace BertHost.Core.Config;

/// <summary>
/// Reads a deployment file (<c>config/*.yaml</c>) into a validated <see cref="HostConfig"/>: every key, type, range,
/// enum value, environment reference, path, plugin assembly, sha256 pin and label list is checked, and every problem is
/// reported with its line (<see cref="ConfigException"/>). Nothing is loaded (no weights, no plugin assemblies); files
/// are only looked at.
/// </summary>
public static class HostConfigLoader
{
    /// <summary>Reads and validates <paramref name="yamlPath"/>.</summary>
    /// <param name="environment">Looks up <c>${NAME}</c> references; the process environment by default.</param>
    /// <param name="tolerateHeadPluginProblems">Serving: return the config despite head plugin problems (see
    /// <see cref="ConfigProblem.HeadPluginOnly"/>), listing them in <see cref="HostConfig.HeadPluginProblems"/>.</param>
    /// <exception cref="ConfigException">The file is missing or has problems (all of them are listed).</exception>
    /// <param name="headValidator">Checks each sound head entry further (its plugin's own checks; see <see cref="IHeadConfigValidator"/>); none by default.</param>
    public static HostConfig Load(string yamlPath, Func<string, string?>? environment = null, bool tolerateHeadPluginProblems = false,
        IHeadConfigValidator? headValidator = null)
    {
        string text;
        try
        {
            text = File.ReadAllText(yamlPath);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ConfigException(yamlPath, [new ConfigProblem(0, 0, "", $"file not found ({Path.GetFullPath(yamlPath)})")]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(yamlPath, [new ConfigProblem(0, 0, "", $"cannot read the file: {e.Message}")]);
        }
        return Parse(text, yamlPath, environment, tolerateHeadPluginProblems, headValidator);
    }

    /// <summary>
    /// Validates YAML text as if it were the file <paramref name="sourcePath"/> (relative paths in it resolve against
    /// that file's folder; messages name it).
    /// </summary>
    /// <exception cref="ConfigException">The text has problems (all of them are listed).</exception>
    public static HostConfig Parse(string yaml, string sourcePath, Func<string, string?>? environment = null, bool tolerateHeadPluginProblems = false,
        IHeadConfigValidator? headValidator = null) =>
        new ConfigReader(sourcePath, environment ?? Environment.GetEnvironmentVariable, tolerateHeadPluginProblems, headValidator).Read(yaml);
}
