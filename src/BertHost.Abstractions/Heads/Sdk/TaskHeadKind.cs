namespace BertHost.Abstractions.Heads.Sdk;

/// <summary>
/// A head kind with trainable weights in one class: its name and description, how its weights are found
/// (<see cref="HeadWeightsImport{TOptions}"/>: fresh, a saved head folder, a Hugging Face folder) and how a head is built
/// from them (<see cref="Build"/>). Its <see cref="Validate"/> reports every problem of a head's options by default.
/// </summary>
/// <example>
/// <code>
/// public sealed class RatingKind() : TaskHeadKind&lt;RatingOptions&gt;("rating", "A score per text", "BertForSequenceClassification", "classifier.")
/// {
///     public override RatingOptions Parse(JsonElement options, BodyInfo body) =&gt; RatingOptions.Parse(options);
///     protected override IHead Build(HeadContext context, LoadedWeights&lt;RatingOptions&gt; weights) =&gt; ...;
/// }
/// </code>
/// </example>
public abstract class TaskHeadKind<TOptions>(string name, string description, string architecture, string tensorPrefix,
    SavedOptionsRules<TOptions>? savedOptions = null)
    : HeadWeightsImport<TOptions>(name, architecture, tensorPrefix, savedOptions), IHeadKind where TOptions : class
{
    public string Name => HeadKind;

    public string Description => description;

    /// <summary>The option keys <see cref="Validate"/> knows (for "did you mean"); empty: options are not validated.</summary>
    protected virtual IReadOnlyList<string> OptionKeys => [];

    /// <summary>Builds the head from its weights: the module, <see cref="LoadedWeights{TOptions}.Prepare"/>d, in the head.</summary>
    protected abstract IHead Build(HeadContext context, LoadedWeights<TOptions> weights);

    public IHead Create(HeadContext context) => Create(context, weights => Build(context, weights));

    /// <summary>Every problem of the head's options (<see cref="HeadValidation.Options{T}"/> over <c>Parse</c>); override to check labels too.</summary>
    public virtual IReadOnlyList<HeadConfigurationException> Validate(HeadValidationContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return OptionKeys.Count == 0 ? [] : HeadValidation.Options(context.Options, OptionKeys, $"a {Name} head", o => Parse(o, context.Body), out _);
    }
}
