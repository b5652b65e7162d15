using BertHost.Abstractions.Heads.Sdk;

namespace BertHost.Core.Config;

/// <summary>"did you mean" for misspelt keys: the closest known key within a small edit distance.</summary>
public static class KeySuggestions
{
    /// <summary>YAML keys are snake_case: the misspelt key is compared in lower case with '-' read as '_'.</summary>
    public static string? Closest(string key, IEnumerable<string> known)
    {
        ArgumentNullException.ThrowIfNull(key);
        return Suggestions.Closest(key.ToLowerInvariant().Replace('-', '_'), known, c => c);
    }

    /// <summary>Optimal string alignment distance (Levenshtein plus transpositions).</summary>
    internal static int Distance(string a, string b) => Suggestions.Distance(a, b);
}
