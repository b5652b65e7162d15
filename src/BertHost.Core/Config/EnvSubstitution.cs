using System.Text;
using System.Text.RegularExpressions;

namespace BertHost.Core.Config;

/// <summary>
/// <c>${NAME}</c> and <c>${NAME:-default}</c> in YAML scalar values (the default applies when NAME is unset or empty);
/// <c>$${</c> writes a literal <c>${</c>.
/// </summary>
internal static partial class EnvSubstitution
{
    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex NamePattern();

    /// <summary>The expanded text, or null with <paramref name="errors"/> filled.</summary>
    public static string? Expand(string text, Func<string, string?> environment, List<string> errors)
    {
        if (!text.Contains("${", StringComparison.Ordinal)) return text;
        var sb = new StringBuilder(text.Length);
        var failed = false;
        var i = 0;
        while (i < text.Length)
        {
            if (text[i] == '$' && i + 2 < text.Length && text[i + 1] == '$' && text[i + 2] == '{')
            {
                sb.Append("${");
                i += 3;
                continue;
            }
            if (text[i] != '$' || i + 1 >= text.Length || text[i + 1] != '{')
            {
                sb.Append(text[i++]);
                continue;
            }
            var close = text.IndexOf('}', i + 2);
            if (close < 0)
            {
                errors.Add($"unterminated '${{' in '{text}'");
                return null;
            }
            var inner = text[(i + 2)..close];
            var sep = inner.IndexOf(":-", StringComparison.Ordinal);
            var name = sep >= 0 ? inner[..sep] : inner;
            var fallback = sep >= 0 ? inner[(sep + 2)..] : null;
            i = close + 1;
            if (!NamePattern().IsMatch(name))
            {
                errors.Add($"invalid environment variable reference '${{{inner}}}' (write ${{NAME}} or ${{NAME:-default}})");
                failed = true;
                continue;
            }
            var value = environment(name);
            if (fallback is not null && string.IsNullOrEmpty(value)) value = fallback;
            if (value is null)
            {
                errors.Add($"environment variable '{name}' is not set (write ${{{name}:-default}} to give a default)");
                failed = true;
                continue;
            }
            sb.Append(value);
        }
        return failed ? null : sb.ToString();
    }
}
