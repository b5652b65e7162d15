using System.Text.Json;
using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads.Sdk;

/// <summary>What a head records about where its weights came from: shown by <c>Describe()</c> and used for staleness.</summary>
/// <param name="Kind"><see cref="LoadedWeights{TOptions}.Fresh"/>, <see cref="LoadedWeights{TOptions}.HeadFolder"/> or <see cref="LoadedWeights{TOptions}.HuggingFace"/>.</param>
/// <param name="TrainedOn">The body fingerprint the weights were trained on; null for fresh weights.</param>
public sealed record WeightsOrigin(string Kind, string? TrainedOn);

/// <summary>
/// A head's weights as <see cref="HeadWeightsImport{TOptions}.Load"/> found them: nothing (fresh), a head folder the plugin
/// saved, or a Hugging Face task model; with the options in force (the saved ones merged with the configuration's) and
/// the labels they carry. The tensors belong to this object until <see cref="DisposeTensors"/>: the kind copies them
/// into its module with <see cref="Prepare"/> and disposes them afterwards (<see cref="HeadWeightsImport{TOptions}.Create"/>
/// does both).
/// </summary>
public sealed class LoadedWeights<TOptions>
{
    public const string Fresh = "fresh";
    public const string HeadFolder = "head-folder";
    public const string HuggingFace = "huggingface";

    /// <summary><see cref="Fresh"/>, <see cref="HeadFolder"/> or <see cref="HuggingFace"/>.</summary>
    public required string Kind { get; init; }

    /// <summary>Where the weights came from, to start error messages ("the head folder /x", "fresh weights").</summary>
    public required string Describe { get; init; }

    /// <summary>The options the head is built with.</summary>
    public required TOptions Options { get; init; }

    /// <summary>The labels the weights carry (head.json or config.json id2label); null when they carry none.</summary>
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>The stored tensors by the module's parameter names; null for a fresh head.</summary>
    public IReadOnlyDictionary<string, Tensor>? Tensors { get; init; }

    /// <summary>The body fingerprint the weights were trained on (a Hugging Face import: the served body's, checked on import).</summary>
    public string? TrainedOn { get; init; }

    /// <summary>The dropout the weights' own configuration names (Hugging Face <c>classifier_dropout</c>...), when any.</summary>
    public double? DefaultDropout { get; init; }

    public bool IsFresh => Tensors is null;

    public WeightsOrigin Origin => new(Kind, TrainedOn);

    /// <summary>The first dimension of a stored tensor (e.g. the rows of <c>classifier.weight</c> = the labels it was trained for); null when absent.</summary>
    public int? Rows(string tensorName) => Tensors is not null && Tensors.TryGetValue(tensorName, out var t) ? (int)t.shape[0] : null;

    /// <summary>The head's labels: the configured ones, else those the weights carry (see <see cref="HeadLabels.Resolve"/>).</summary>
    /// <param name="freshHint">The message when a fresh head has no labels (what to add to the YAML).</param>
    public IReadOnlyList<string> ResolveLabels(HeadContext context, string freshHint)
    {
        ArgumentNullException.ThrowIfNull(context);
        return HeadLabels.Resolve(context.Labels, Labels, Describe, IsFresh, freshHint);
    }

    /// <summary>
    /// Gives <paramref name="module"/> these weights (or its fresh initialization from the body's initializer range and the
    /// deployment's seed), moves it to the body's device and dtype in eval mode, and warns when the weights were trained on
    /// another body. The module is disposed if this fails.
    /// </summary>
    /// <param name="initializeFresh">(std, seed) =&gt; the module's own fresh initialization.</param>
    /// <param name="hint">What to check when the stored tensors do not fit the module (e.g. "check options.hidden_layers and the labels").</param>
    public void Prepare(HeadContext context, nn.Module module, Action<double, long> initializeFresh, string? hint = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(initializeFresh);
        HeadWeights.PrepareModule(module, context.Body, Tensors, () => initializeFresh(context.Body.InitializerRange, context.Seed), Describe, hint);
        HeadWeights.WarnIfStale(context, TrainedOn);
    }

    public void DisposeTensors() => HeadWeights.DisposeAll(Tensors);
}

/// <summary>
/// How a saved head's options meet the configuration's (see <see cref="HeadWeightsImport{TOptions}"/>): the options that
/// change what the weights mean must agree, and the options record which keys the configuration gave.
/// </summary>
/// <param name="StructuralKeys">Options that change what the weights mean (pooling, layer sizes...): a saved head must be
/// served with the values it was trained with, so a configuration giving another value is refused.</param>
/// <param name="Given">The keys the configuration gave.</param>
/// <param name="WithGiven">The merged options with the configuration's given keys recorded.</param>
/// <param name="ValueOf">A structural key's value as the refusal message shows it.</param>
public sealed record SavedOptionsRules<TOptions>(
    IReadOnlyList<string> StructuralKeys,
    Func<TOptions, IReadOnlySet<string>> Given,
    Func<TOptions, IReadOnlySet<string>, TOptions> WithGiven,
    Func<TOptions, string, string> ValueOf);

/// <summary>
/// How a head kind finds its weights: the head-folder and Hugging Face import that every kind shares, with hooks for
/// what is particular to a kind (its options parser, the options that change what the weights mean, the checks of a
/// Hugging Face folder). A kind declares one subclass (usually a private nested one) and calls <see cref="Create"/>.
/// </summary>
/// <typeparam name="TOptions">The kind's parsed <c>options:</c>.</typeparam>
public abstract class HeadWeightsImport<TOptions> where TOptions : class
{
    /// <param name="headKind">The kind's YAML name; a head folder must have been saved by this kind.</param>
    /// <param name="architecture">The Hugging Face class the kind imports (e.g. <c>BertForSequenceClassification</c>).</param>
    /// <param name="tensorPrefix">The prefix of the task-head tensors in a Hugging Face folder (e.g. <c>classifier.</c>).</param>
    /// <param name="savedOptions">How saved options meet the configuration's; null: every configured key simply overrides.</param>
    protected HeadWeightsImport(string headKind, string architecture, string tensorPrefix, SavedOptionsRules<TOptions>? savedOptions = null)
    {
        HeadKind = headKind;
        Architecture = architecture;
        TensorPrefix = tensorPrefix;
        _saved = savedOptions;
    }

    private readonly SavedOptionsRules<TOptions>? _saved;

    public string HeadKind { get; }
    public string Architecture { get; }
    public string TensorPrefix { get; }

    /// <summary>The kind's options parser; every problem is a <see cref="HeadConfigurationException"/> on <c>options.key</c>.</summary>
    public abstract TOptions Parse(JsonElement options, BodyInfo body);

    /// <summary>
    /// The options a head folder's head is built with. By default: the saved options (a problem with them is the
    /// folder's, reported on <c>weights</c>), structural keys the configuration gives must agree with them (see
    /// <see cref="SavedOptionsRules{TOptions}"/>), then each configured key overrides the saved one
    /// (<see cref="HeadWeights.MergeOptions"/>).
    /// </summary>
    protected virtual TOptions HeadFolderOptions(HeadContext context, string folder, HeadManifest manifest, TOptions yaml)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(manifest);
        var saved = HeadOptions.ParseSaved(folder, () => Parse(JsonSerializer.SerializeToElement(manifest.Options), context.Body));
        if (_saved is { } rules)
        {
            var given = rules.Given(yaml);
            HeadOptions.CheckSavedAgree(folder, rules.StructuralKeys.Where(given.Contains), key => rules.ValueOf(yaml, key), key => rules.ValueOf(saved, key));
        }
        var merged = Parse(HeadWeights.MergeOptions(manifest.Options, context.Options), context.Body);
        return _saved is null ? merged : _saved.WithGiven(merged, _saved.Given(yaml));
    }

    /// <summary>
    /// Checks a Hugging Face task folder against the configured options before its tensors are read (e.g. its classifier
    /// reads the pooler, so pooling must be 'pooler'), and returns the options in force and the dropout its config names.
    /// Default: the configured options, no dropout.
    /// </summary>
    protected virtual (TOptions Options, double? DefaultDropout) CheckHuggingFace(HeadContext context, HuggingFaceTaskModel model, TOptions yaml) =>
        (yaml, null);

    /// <summary>Finds and reads the weights of the head <paramref name="context"/> describes; the caller disposes their tensors.</summary>
    /// <param name="yaml">The configuration's options, parsed (<c>Parse</c> of <c>HeadContext.Options</c>).</param>
    public LoadedWeights<TOptions> Load(HeadContext context, TOptions yaml)
    {
        ArgumentNullException.ThrowIfNull(context);
        var path = context.WeightsPath;
        switch (HeadWeights.Locate(path, Architecture))
        {
            case WeightsLocation.HeadFolder:
            {
                var manifest = HeadWeights.ReadManifest(path!, HeadKind);
                var options = HeadFolderOptions(context, path!, manifest, yaml);
                return new LoadedWeights<TOptions>
                {
                    Kind = LoadedWeights<TOptions>.HeadFolder, Describe = $"the head folder {path}", Options = options, Labels = manifest.Labels,
                    Tensors = HeadWeights.ReadTensors(context, path!), TrainedOn = manifest.BodyFingerprint,
                };
            }
            case WeightsLocation.HuggingFace:
            {
                var model = HuggingFaceTaskModel.Open(context, path!, Architecture);
                var (options, dropout) = CheckHuggingFace(context, model, yaml);
                return new LoadedWeights<TOptions>
                {
                    Kind = LoadedWeights<TOptions>.HuggingFace, Describe = $"the Hugging Face model {path}", Options = options, Labels = model.Labels,
                    Tensors = model.ReadHeadTensors(TensorPrefix), TrainedOn = context.Body.Fingerprint, DefaultDropout = dropout,
                };
            }
            default:
                return new LoadedWeights<TOptions> { Kind = LoadedWeights<TOptions>.Fresh, Describe = "fresh weights", Options = yaml };
        }
    }

    /// <summary>
    /// Parses the configured options, loads the weights, and hands them to <paramref name="build"/> (which builds the
    /// module, <see cref="LoadedWeights{TOptions}.Prepare"/>s it and returns the head); the stored tensors are disposed
    /// afterwards, whether the head was built or not.
    /// </summary>
    public IHead Create(HeadContext context, Func<LoadedWeights<TOptions>, IHead> build)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(build);
        var weights = Load(context, Parse(context.Options, context.Body));
        try
        {
            return build(weights);
        }
        finally
        {
            weights.DisposeTensors();
        }
    }
}
