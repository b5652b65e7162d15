namespace BertHost.Core.Config;

/// <summary>
/// Checks a head entry beyond what the file itself shows (e.g. by asking the head's plugin, see
/// <see cref="PluginHeadValidator"/>). The reader calls it for each head entry without problems of its own and
/// reports what it returns like its own problems, with the line of the field.
/// </summary>
public interface IHeadConfigValidator
{
    /// <summary>Every problem of <paramref name="head"/>: the field inside the head (<c>kind</c>, <c>options.pooling</c>, <c>labels</c>) and the message.</summary>
    IReadOnlyList<(string Field, string Message)> Validate(BodySection body, HeadSection head);
}
