namespace BertHost.Abstractions.Heads;

/// <summary>
/// A kind of head a plugin assembly offers (e.g. <c>text-classification</c>). The host discovers every public,
/// non-abstract type implementing this interface with a parameterless constructor, and calls
/// <see cref="Create"/> once per head declared in YAML with <c>kind: Name</c>.
/// </summary>
public interface IHeadKind
{
    /// <summary>The name YAML refers to in <c>kind:</c> (lower-case, dash-separated by convention).</summary>
    string Name { get; }

    /// <summary>One line for listings.</summary>
    string Description { get; }

    /// <summary>
    /// Builds a head: its module (fresh or loaded from <c>HeadContext.WeightsPath</c>) on the body's device and
    /// dtype. Throw <see cref="HeadConfigurationException"/> for bad options, labels or weights; the host then fails
    /// this head alone and reports the message.
    /// </summary>
    IHead Create(HeadContext context);

    /// <summary>
    /// Checks a head's options and labels without building it (for <c>berthost validate</c>): EVERY problem found, each a
    /// <see cref="HeadConfigurationException"/> whose <see cref="HeadConfigurationException.Field"/> is the YAML key at
    /// fault (<c>options.pooling</c>, <c>labels</c>), so the host can show its line. The default checks nothing; a kind
    /// implements it from its options parser (see <see cref="Sdk.HeadValidation"/>). It must not throw for bad
    /// configuration; what it cannot know without the weights is left to <see cref="Create"/>.
    /// </summary>
    IReadOnlyList<HeadConfigurationException> Validate(HeadValidationContext context) => [];
}
