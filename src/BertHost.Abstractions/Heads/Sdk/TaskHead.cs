using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Text;
using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads.Sdk;

/// <summary>
/// The part of an <see cref="IHead"/> that is the same for every head with trainable weights: its identity, options,
/// module, token budget, <see cref="Describe"/>, <see cref="Save"/> (which records the body it was trained on, as the
/// contract asks) and <see cref="Dispose()"/>. A subclass holds only its task: <see cref="Encode"/>, <see cref="Forward"/>,
/// <see cref="Decode"/>, the options as head.json records them (<see cref="OptionsJson"/>) and, when trainable,
/// <see cref="Training"/> (set in its constructor).
/// </summary>
/// <typeparam name="TOptions">The kind's parsed options.</typeparam>
/// <typeparam name="TModule">The head's module (its parameters); owned and disposed by the head.</typeparam>
public abstract class TaskHead<TOptions, TModule> : IHead where TModule : nn.Module
{
    /// <param name="kind">The kind's YAML name (recorded in head.json).</param>
    /// <param name="maxLength">The options' max_length (tokens per sequence); the body's limit caps it, and applies when null.</param>
    /// <param name="labels">The output labels; empty for heads without labels.</param>
    protected TaskHead(HeadContext context, string kind, TOptions options, TModule module, WeightsOrigin origin, int? maxLength,
        IReadOnlyList<string>? labels = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(origin);
        Context = context;
        Kind = kind;
        Options = options;
        Module = module;
        WeightsKind = origin.Kind;
        TrainedOnFingerprint = origin.TrainedOn;
        Labels = labels ?? [];
        MaxLength = Math.Min(maxLength ?? int.MaxValue, context.Body.MaxSequenceLength);
    }

    /// <summary>What the host gave this head: body facts, tokenizer, checkpoint store, logger, oversized policy.</summary>
    protected HeadContext Context { get; }

    public string Name => Context.Name;
    public string Kind { get; }
    public IReadOnlyList<string> Labels { get; }
    public TOptions Options { get; }

    /// <summary>The head's module, typed (<see cref="IHead.Module"/> is the same object).</summary>
    public TModule Module { get; }

    nn.Module IHead.Module => Module;

    /// <summary>What the head reads from the body; the last hidden state unless the subclass says more.</summary>
    public BodyRequirements Requirements { get; protected init; } = BodyRequirements.LastHiddenState;

    public string? TrainedOnFingerprint { get; private set; }

    /// <summary>Training support; set it in the subclass's constructor (null: inference only).</summary>
    public IHeadTraining? Training { get; protected init; }

    /// <summary>The request parameters <see cref="Encode"/> reads (null: not declared, every parameter passes).</summary>
    public virtual IReadOnlyCollection<string>? Parameters => null;

    /// <summary>Tokens per sequence, special tokens included: the options' max_length capped by the body's.</summary>
    public int MaxLength { get; }

    public ITextTokenizer Tokenizer => Context.Tokenizer;

    /// <summary>Where the weights came from: fresh, head-folder or huggingface.</summary>
    public string WeightsKind { get; }

    /// <summary>Whether the weights were trained on another body than the served one.</summary>
    public bool IsStale => TrainedOnFingerprint is not null && TrainedOnFingerprint != Context.Body.Fingerprint;

    /// <summary>The options with every key explicit: what head.json records and <see cref="Describe"/> shows.</summary>
    protected abstract JsonObject OptionsJson();

    /// <summary>Whether <see cref="Describe"/> lists <c>labels</c> (even when empty); false for heads whose outputs are not labels.</summary>
    protected virtual bool DescribesLabels => true;

    /// <summary>Kind-specific facts for <see cref="Describe"/> (e.g. a window stride), added after <c>max_length</c>.</summary>
    protected virtual void DescribeMore(JsonObject description) { }

    /// <summary>
    /// <c>labels</c>, <c>options</c>, <c>max_length</c>, what <see cref="DescribeMore"/> adds, <c>weights</c>,
    /// <c>trained_on</c>, <c>stale</c> and the declared <c>parameters</c>.
    /// </summary>
    public virtual JsonObject Describe()
    {
        var o = new JsonObject();
        if (DescribesLabels) o["labels"] = new JsonArray(Labels.Select(l => (JsonNode)l).ToArray());
        o["options"] = OptionsJson();
        o["max_length"] = MaxLength;
        DescribeMore(o);
        o["weights"] = WeightsKind;
        o["trained_on"] = TrainedOnFingerprint;
        o["stale"] = IsStale;
        if (Parameters is { Count: > 0 } parameters) o["parameters"] = new JsonArray(parameters.Select(p => (JsonNode)p).ToArray());
        return o;
    }

    public abstract HeadFeatures Encode(JsonElement input, JsonElement parameters);

    public abstract Tensor Forward(BodyOutput body, HeadBatch batch);

    public abstract IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch);

    /// <summary>
    /// Saves the head folder (module state + head.json with kind, labels, <see cref="OptionsJson"/>, body fingerprint and
    /// metrics) and records that the head is now trained on <see cref="HeadSaveInfo.BodyFingerprint"/>.
    /// </summary>
    public virtual void Save(string folder, HeadSaveInfo info)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(info);
        HeadWeights.Save(Context, folder, Module, new HeadManifest(Kind, Labels, OptionsJson(), info.BodyFingerprint, info.Metrics, DateTimeOffset.UtcNow));
        TrainedOnFingerprint = info.BodyFingerprint;
    }

    /// <summary>
    /// One sequence (or a pair) cut to <see cref="MaxLength"/> (longest_first); under a deployment that refuses oversized
    /// inputs, an input that does not fit is a <see cref="HeadInputException"/> on <paramref name="field"/> instead.
    /// </summary>
    protected EncodedSequence EncodeOrRefuse(string text, string? pair, string field)
    {
        if (!Context.TruncateOversized) HeadInput.RefuseIfOversized(Context.Tokenizer, text, pair, MaxLength, field);
        return EncodeTruncated(text, pair);
    }

    /// <summary>One sequence (or a pair) cut to <see cref="MaxLength"/> (longest_first).</summary>
    protected EncodedSequence EncodeTruncated(string text, string? pair) =>
        Context.Tokenizer.Encode(text, pair, new EncodeOptions { MaxLength = MaxLength, Truncation = TruncationStrategy.LongestFirst })[0];

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes the module; override to release more (call the base).</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing) Module.Dispose();
    }
}
