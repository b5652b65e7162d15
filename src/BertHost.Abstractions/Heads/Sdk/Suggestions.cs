namespace BertHost.Abstractions.Heads.Sdk;

/// <summary>"did you mean": the closest of some known names to a misspelt one, within a small edit distance.</summary>
public static class Suggestions
{
    /// <summary>The known name closest to <paramref name="name"/> (compared ignoring case), or null when none is close.</summary>
    public static string? Closest(string name, IEnumerable<string> known)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(known);
        return Closest(name.ToLowerInvariant(), known, c => c.ToLowerInvariant());
    }

    /// <summary>
    /// The known name closest to <paramref name="name"/> after <paramref name="normalize"/>, or null when the closest is
    /// further than a third of the shorter length (at least 2 edits are allowed).
    /// </summary>
    public static string? Closest(string name, IEnumerable<string> known, Func<string, string> normalize)
    {
        ArgumentNullException.ThrowIfNull(known);
        ArgumentNullException.ThrowIfNull(normalize);
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in known)
        {
            var d = Distance(name, normalize(candidate));
            if (d < bestDistance)
            {
                bestDistance = d;
                best = candidate;
            }
        }
        var allowed = Math.Max(2, Math.Min(name.Length, best?.Length ?? 0) / 3);
        return best is not null && bestDistance <= allowed ? best : null;
    }

    /// <summary>Optimal string alignment distance (Levenshtein plus transpositions).</summary>
    public static int Distance(string a, string b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
        for (var j = 1; j <= b.Length; j++)
        {
            var cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
        }
        return d[a.Length, b.Length];
    }
}
