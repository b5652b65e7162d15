using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Config;
using BertHost.Core.Deployments;
using BertHost.Core.Lora;
using BertHost.Core.Plugins;
using Microsoft.Extensions.Logging;
using BertHost.Core.Body;

namespace BertHost.Core.Serving;

/// <summary>
/// The serving core: ONE body, the heads of the deployment (each loaded in isolation: a head that fails to load is
/// reported and the others serve), and the scheduler that batches their requests through shared body passes.
/// </summary>
public sealed class InferenceEngine : IInferenceEngine, IServedModels, IAsyncDisposable
{
    private readonly Deployment _deployment;
    private readonly HostConfig _config;
    private readonly PluginCatalog _plugins;
    private readonly ILoggerFactory _loggers;
    private readonly ServingMetrics _metrics;
    private readonly ILogger _logger;
    private readonly DrainGate _gate = new();
    private readonly object _swapLock = new();
    private volatile Served _served;

    /// <summary>What serves now; replaced whole (never mutated, never copied with <c>with</c>) by a swap, while the drain gate holds requests back.</summary>
    private sealed class Served(SharedBody body, ICheckpointStore store, IReadOnlyList<HeadSlot> slots)
    {
        public SharedBody Body { get; } = body;
        public ICheckpointStore Store { get; } = store;
        public IReadOnlyList<HeadSlot> Slots { get; } = slots;
        public Dictionary<string, HeadSlot> ByName { get; } = slots.ToDictionary(s => s.Name, StringComparer.OrdinalIgnoreCase);
    }

    private InferenceEngine(Deployment deployment, BertBody body, ICheckpointStore store, PluginCatalog plugins, IReadOnlyList<HeadSlot> slots,
        ServingMetrics metrics, ILoggerFactory loggers, ILogger logger)
    {
        _deployment = deployment;
        _config = deployment.Config;
        _plugins = plugins;
        _loggers = loggers;
        _metrics = metrics;
        _logger = logger;
        _served = new Served(new SharedBody(body), store, slots);
        Scheduler = new BatchScheduler(body, _config.Batching, metrics, logger);
        UpdateHeadMetrics();
    }

    /// <summary>The served body (it changes when a training job's body is promoted; hold <see cref="AcquireBody"/> to keep one).</summary>
    public BertBody Body => _served.Body.Body;
    public BatchScheduler Scheduler { get; }
    public HostConfig Config => _config;

    /// <summary>
    /// Loads the body (a body that does not load stops the host: <see cref="BodyLoadException"/>) and every head of
    /// the deployment: the YAML's, with what training jobs promoted in their place (<see cref="Deployment.WithPromotions"/>).
    /// </summary>
    public static InferenceEngine Start(HostConfig config, ILoggerFactory loggers, ServingMetrics metrics) =>
        Start(Deployment.WithPromotions(config, loggers.CreateLogger<InferenceEngine>()), loggers, metrics);

    /// <summary>Loads the body (a body that does not load stops the host: <see cref="BodyLoadException"/>) and every head of <paramref name="deployment"/>.</summary>
    public static InferenceEngine Start(Deployment deployment, ILoggerFactory loggers, ServingMetrics metrics)
    {
        var logger = loggers.CreateLogger<InferenceEngine>();
        var body = deployment.LoadBody(forServing: true);
        logger.LogInformation("body {Folder} loaded on {Device} as {DType}: {Layers} layers, hidden {Hidden}, {Fingerprint}; {Prepacked}; attention core {AttentionCore}{AttentionCoreReason}",
            body.Folder, body.Device, body.DType, body.Config.NumHiddenLayers, body.Config.HiddenSize, body.Fingerprint, DescribePrepacking(body),
            body.AttentionCore, body.AttentionCoreReason is { } why ? $" ({why})" : "");
        foreach (var fallback in body.FastPathFallbacks) logger.LogWarning("fast path fell back after its load-time check: {Fallback}", fallback);
        var plugins = new PluginCatalog(loggers.CreateLogger<PluginCatalog>());
        var store = Deployment.CheckpointStoreFor(body);
        var slots = deployment.Heads.Select(h => LoadHead(deployment, h, body, plugins, store, loggers)).ToList();
        return new InferenceEngine(deployment, body, store, plugins, slots, metrics, loggers, logger);
    }

    private static string DescribePrepacking(BertBody body) => body.Prepacked is { } p
        ? $"Linear weights prepacked for oneDNN ({p.Bytes / 1e6:F0} MB), used for passes of {p.PassesServed} ({p.RowLimitReason})" +
          string.Concat(p.Projections.Where(s => s.Reason is not null).Select(s => $"; {s.Shape} {s.Layout}: {s.Reason}"))
        : $"Linear weights not prepacked ({body.NotPrepackedReason})";

    /// <summary>A head instance with the LoRA adapter (or private merged body) its section serves it with.</summary>
    private sealed record BuiltHead(IHead Head, LoraAdapter? Adapter, BertBody? Merged) : IDisposable
    {
        public void Dispose()
        {
            Head.Dispose();
            Adapter?.Dispose();
            Merged?.Dispose();
        }
    }

    /// <summary>
    /// Builds head <paramref name="section"/> on <paramref name="body"/> from <paramref name="weights"/> (null = fresh)
    /// with its adapter; what was built is disposed when a later step throws. <paramref name="kind"/> is set once the
    /// plugin resolved.
    /// </summary>
    private static BuiltHead Build(Deployment deployment, PluginCatalog plugins, HeadSection section, string? weights, BertBody body,
        ICheckpointStore store, ILoggerFactory loggers, out LoadedKind kind)
    {
        kind = plugins.Resolve(section.Plugin, section.Sha256, section.Kind);
        var head = kind.CreateHead(deployment.ContextFor(section with { Weights = weights }, body, store, loggers));
        try
        {
            var (adapter, merged) = Deployment.LoadAdapter(deployment.Config, section, weights, body);
            return new BuiltHead(head, adapter, merged);
        }
        catch
        {
            head.Dispose();
            throw;
        }
    }

    private BuiltHead Build(string name, string? weights, BertBody body, ICheckpointStore store) =>
        Build(_deployment, _plugins, FindSection(name) ?? throw new ArgumentException($"no head named '{name}'"), weights, body, store, _loggers, out _);

    private static HeadSlot LoadHead(Deployment deployment, DeployedHead deployed, BertBody body, PluginCatalog plugins,
        ICheckpointStore store, ILoggerFactory loggers)
    {
        var (section, weights, job) = (deployed.Section, deployed.Section.Weights, deployed.PromotedByJob);
        var logger = loggers.CreateLogger($"BertHost.Heads.{section.Name}");
        LoadedKind? kind = null;
        try
        {
            var (head, adapter, merged) = Build(deployment, plugins, section, weights, body, store, loggers, out kind);
            var state = StateOn(head, body, section.Name, out var why);
            if (why is not null) logger.LogWarning("{Reason}", why);
            else logger.LogInformation("head {Head} ({Kind}) ready{Adapter}", section.Name, section.Kind,
                adapter is { } a ? $" with a LoRA adapter ({a.Settings}) in the shared body pass" : merged is not null ? " on a private body with its LoRA adapter merged" : "");
            return new HeadSlot(section.Name, section.Kind, head, state, why, kind.AssemblyPath, kind.Sha256, weights, job)
            {
                Adapter = adapter,
                MergedBody = merged,
            };
        }
        catch (Exception e)
        {
            // The exception's type stays in the log: clients read the reason, not .NET's names for it.
            var why = e is HeadConfigurationException c ? $"{c.Field}: {c.Message}" : e.Message;
            if (job is not null) why += $" (weights {weights} promoted by job {job})";
            logger.LogError(e, "head {Head} failed to load: {Reason}", section.Name, why);
            return new HeadSlot(section.Name, section.Kind, null, HeadStates.Failed, why, kind?.AssemblyPath, kind?.Sha256, weights, job);
        }
    }

    /// <summary>Ready, or stale when the head's weights were trained on another body than <paramref name="body"/>.</summary>
    private static string StateOn(IHead head, BertBody body, string name, out string? why)
    {
        why = null;
        if (head.TrainedOnFingerprint is not { } trainedOn || trainedOn == body.Fingerprint) return HeadStates.Ready;
        why = HeadStates.StaleReason(name, trainedOn, body.Fingerprint);
        return HeadStates.Stale;
    }

    private void UpdateHeadMetrics()
    {
        var slots = _served.Slots;
        _metrics.SetHeadsReady(slots.Count(s => s.IsReady), slots.Count(s => !s.IsReady));
    }

    // ---- training jobs -------------------------------------------------------------------------------------------

    /// <summary>A reference to the served body that keeps it alive (for a training job) even if another body is swapped in meanwhile.</summary>
    public BodyLease AcquireBody()
    {
        lock (_swapLock)
            return _served.Body.TryAcquire() ?? throw new ObjectDisposedException(nameof(InferenceEngine));
    }

    /// <summary>The deployment entry of head <paramref name="name"/>, or null.</summary>
    public HeadSection? FindSection(string name) =>
        _config.Heads.FirstOrDefault(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>Why head <paramref name="name"/> cannot be trained (it failed to load, or its kind has no training support); null when it can.</summary>
    public string? TrainingRefusal(string name)
    {
        if (!_served.ByName.TryGetValue(name, out var slot)) return $"no head named '{name}'";
        if (slot.Head is null) return $"head '{slot.Name}' failed to load: {slot.Error}";
        return slot.Head.Training is null ? $"head '{slot.Name}' ({slot.Kind}) does not support training" : null;
    }

    /// <summary>The weights folder head <paramref name="name"/> serves from now (promoted or the YAML's); null for a fresh head.</summary>
    public string? ServedWeights(string name) => _served.ByName.TryGetValue(name, out var slot) ? slot.Weights : null;

    /// <summary>
    /// A NEW instance of head <paramref name="name"/> (same plugin kind, labels and options; never the served instance)
    /// built on <paramref name="body"/> from <paramref name="weights"/> (null = fresh). Throws what the kind throws.
    /// </summary>
    public IHead CreateHead(string name, BertBody body, string? weights)
    {
        var section = FindSection(name) ?? throw new ArgumentException($"no head named '{name}'");
        var kind = _plugins.Resolve(section.Plugin, section.Sha256, section.Kind);
        return kind.CreateHead(_deployment.ContextFor(section with { Weights = weights }, body, _served.Store, _loggers));
    }

    /// <summary>
    /// Serves head <paramref name="name"/> from <paramref name="weights"/>: the new instance is built first (a failure
    /// leaves the served head as it is), then swapped in once the requests in flight have finished on the old one,
    /// which is then disposed. Weights trained on another body than the served one are refused.
    /// </summary>
    public async Task SwapHeadAsync(string name, string weights, string? job)
    {
        BuiltHead built;
        using (var body = AcquireBody())
            built = Build(name, weights, body.Body, _served.Store);
        var head = built.Head;
        IHead? old = null;
        HeadSlot? oldSlot = null;
        try
        {
            await _gate.RunAloneAsync(() =>
            {
                var served = _served;
                if (StateOn(head, served.Body.Body, name, out var why) != HeadStates.Ready) throw new InvalidOperationException(why);
                var slot = served.ByName[name];
                old = slot.Head;
                oldSlot = slot;
                var slots = served.Slots.Select(s => s == slot
                    ? new HeadSlot(s.Name, s.Kind, head, HeadStates.Ready, null, s.Plugin, s.PluginSha256, weights, job) { Adapter = built.Adapter, MergedBody = built.Merged }
                    : s).ToList();
                _served = new Served(served.Body, served.Store, slots);
            });
        }
        catch
        {
            built.Dispose();
            throw;
        }
        old?.Dispose();
        oldSlot?.DisposeAdapter();
        UpdateHeadMetrics();
        _logger.LogInformation("head {Head} now serves {Weights}{Job}", name, weights, job is null ? "" : $" (job {job})");
    }

    /// <summary>
    /// Serves the body in <paramref name="bodyFolder"/>, with the heads of <paramref name="headWeights"/> rebuilt on it
    /// from those weights. Every other head keeps its instance and is stale unless its weights were trained on the new
    /// body. Requests wait at the gate during the swap; the old body is released once no job holds it.
    /// </summary>
    public async Task SwapBodyAsync(string bodyFolder, IReadOnlyDictionary<string, string> headWeights, string? job)
    {
        var body = Deployment.LoadBody(_config, bodyFolder, forServing: true);
        var store = Deployment.CheckpointStoreFor(body);
        var built = new Dictionary<string, BuiltHead>(StringComparer.OrdinalIgnoreCase);
        var replaced = new List<IHead>();
        var replacedSlots = new List<HeadSlot>();
        try
        {
            foreach (var (name, weights) in headWeights) built[name] = Build(name, weights, body, store);
            SharedBody? old = null;
            await _gate.RunAloneAsync(() =>
            {
                var served = _served;
                var slots = served.Slots.Select(s =>
                {
                    if (built.TryGetValue(s.Name, out var b))
                    {
                        var head = b.Head;
                        if (s.Head is not null) replaced.Add(s.Head);
                        replacedSlots.Add(s);
                        var state = StateOn(head, body, s.Name, out var why);
                        return new HeadSlot(s.Name, s.Kind, head, state, why, s.Plugin, s.PluginSha256, headWeights[s.Name], job)
                            { Adapter = b.Adapter, MergedBody = b.Merged };
                    }
                    if (s.Head is null) return s;
                    var kept = StateOn(s.Head, body, s.Name, out var reason);
                    // An adapter names modules, not one body's tensors: it applies to the new body as it did to the old.
                    return new HeadSlot(s.Name, s.Kind, s.Head, kept, reason, s.Plugin, s.PluginSha256, s.Weights, s.PromotedFromJob)
                        { Adapter = s.Adapter, MergedBody = s.MergedBody };
                }).ToList();
                Scheduler.SwapBody(body);
                lock (_swapLock)
                {
                    old = served.Body;
                    _served = new Served(new SharedBody(body), store, slots);
                }
            });
            old?.Release();
        }
        catch
        {
            foreach (var b in built.Values) b.Dispose();
            body.Dispose();
            throw;
        }
        foreach (var head in replaced) head.Dispose();
        foreach (var slot in replacedSlots) slot.DisposeAdapter();
        UpdateHeadMetrics();
        foreach (var slot in _served.Slots.Where(s => s.State == HeadStates.Stale)) _logger.LogWarning("{Reason}", slot.Error);
        _logger.LogInformation("body {Folder} ({Fingerprint}) now serves{Job}", body.Folder, body.Fingerprint, job is null ? "" : $" (job {job})");
    }

    // ---- serving -------------------------------------------------------------------------------------------------

    public bool IsReady => _served.Slots.All(s => s.State != HeadStates.Failed || !Required(s.Name));

    private bool Required(string head) => FindSection(head)?.Required ?? true;

    public IReadOnlyList<HeadStatus> Heads => _served.Slots.Select(s => s.ToStatus(withDetails: false) with { Required = Required(s.Name) }).ToList();

    public HeadStatus? FindHead(string name, bool withDetails = false) =>
        _served.ByName.TryGetValue(name, out var slot) ? slot.ToStatus(withDetails) with { Required = Required(slot.Name) } : null;

    public IReadOnlyList<EncodedSequence> Tokenize(IReadOnlyList<string> texts, bool addSpecialTokens)
    {
        var limits = _config.Host;
        if (texts.Count == 0) throw new ServingException(ServingError.BadRequest, "inputs must not be empty", "inputs");
        if (texts.Count > limits.MaxInputsPerRequest)
            throw new ServingException(ServingError.PayloadTooLarge, $"{texts.Count} inputs in one request; at most {limits.MaxInputsPerRequest} are accepted", "inputs");
        var tokenizer = Body.Tokenizer;
        var options = new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate, AddSpecialTokens = addSpecialTokens };
        var result = new List<EncodedSequence>(texts.Count);
        long total = 0;
        for (var i = 0; i < texts.Count; i++)
        {
            var sequence = tokenizer.Encode(texts[i], null, options)[0];
            if (sequence.Length > limits.MaxInputTokens)
                throw new ServingException(ServingError.TooMuchWork,
                    $"inputs[{i}] is {sequence.Length} tokens; at most {limits.MaxInputTokens} per input (host.max_input_tokens)", $"inputs[{i}]");
            total += sequence.Length;
            if (total > limits.MaxRequestTokens)
                throw new ServingException(ServingError.TooMuchWork,
                    $"the inputs come to more than {limits.MaxRequestTokens} tokens ({total} by inputs[{i}]); at most {limits.MaxRequestTokens} per request (host.max_request_tokens)", "inputs");
            result.Add(sequence);
        }
        return result;
    }

    public JsonObject DescribeBody() => new()
    {
        ["model_folder"] = Body.Folder,
        ["fingerprint"] = Body.Fingerprint,
        ["device"] = Body.Device.ToString(),
        ["dtype"] = Body.DType.ToString().ToLowerInvariant(),
        ["hidden_size"] = Body.Config.HiddenSize,
        ["num_hidden_layers"] = Body.Config.NumHiddenLayers,
        ["num_attention_heads"] = Body.Config.NumAttentionHeads,
        ["vocab_size"] = Body.Config.VocabSize,
        ["max_sequence_length"] = Body.MaxSequenceLength,
        ["has_pooler"] = Body.Model.HasPooler,
        ["prepacked_weights_bytes"] = Body.Prepacked?.Bytes ?? 0,
        // null: the packed weights serve passes of any size (0 when nothing is packed).
        ["prepacked_max_rows"] = Body.Prepacked is { } packed ? packed.MaxRows == long.MaxValue ? null : packed.MaxRows : 0,
        ["attention_core"] = Body.AttentionCore,
        ["fast_paths"] = DescribeFastPaths(Body),
        ["body_passes"] = Scheduler.BodyPasses,
        ["body_rows"] = Scheduler.BodyRows,
    };

    /// <summary>
    /// What the load-time checks chose: the attention core and why, each projection shape's packed layout and why, and
    /// every fast path that fell back to the plain path on this machine.
    /// </summary>
    internal static JsonObject DescribeFastPaths(BertBody body) => new()
    {
        ["attention_core"] = body.AttentionCore,
        ["attention_core_reason"] = body.AttentionCoreReason,
        ["lora_updates"] = body.Model.Kernels.LowRankRows ? "cpu_rows" : "libtorch",
        ["lora_updates_reason"] = body.Backend.LoraUpdatesReason,
        ["packed_projections"] = new JsonArray((body.Prepacked?.Projections ?? []).Select(p => (JsonNode)new JsonObject
        {
            ["shape"] = p.Shape,
            ["dtype"] = p.DType,
            ["linears"] = p.Linears,
            ["layout"] = p.Layout,
            ["reason"] = p.Reason,
        }).ToArray()),
        ["not_prepacked_reason"] = body.NotPrepackedReason,
        ["precision"] = new JsonObject(body.PrecisionByPart.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value))),
        ["quantized_projections"] = new JsonArray((body.Quantized?.Projections ?? []).Select(p => (JsonNode)new JsonObject
        {
            ["shape"] = p.Shape,
            ["int8_linears"] = p.Int8Linears,
            ["float_linears"] = p.FloatLinears,
            ["kernel"] = p.KernelName,
            ["excluded"] = new JsonArray(p.Excluded.Select(e => (JsonNode)e).ToArray()),
            ["reason"] = p.Reason,
        }).ToArray()),
        ["int8_stacked_qkv_layers"] = body.Quantized?.FusedGroups,
        ["int8_stacked_qkv_kernel"] = body.Quantized?.StackedKernelName,
        ["int8_row_epilogues"] = new JsonArray((body.Quantized is { RowEpilogues: true } ? Backends.RowEpilogueCheck.Names : []).Select(n => (JsonNode)n).ToArray()),
        ["fallbacks"] = new JsonArray(body.FastPathFallbacks.Select(f => (JsonNode)f).ToArray()),
    };

    public async Task<IReadOnlyList<JsonNode>> PredictAsync(string head, IReadOnlyList<JsonElement> inputs, JsonElement parameters, CancellationToken cancellationToken)
    {
        var results = await RunAsync([head], inputs, parameters, cancellationToken);
        return results.Select(r => r[0]).ToList();
    }

    public async Task<IReadOnlyList<JsonObject>> PredictManyAsync(IReadOnlyList<string> heads, IReadOnlyList<JsonElement> inputs, JsonElement parameters, CancellationToken cancellationToken)
    {
        if (heads.Count == 0) throw new ServingException(ServingError.BadRequest, "heads must name at least one head", "heads");
        var duplicate = heads.GroupBy(h => h).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ServingException(ServingError.BadRequest, $"head '{duplicate.Key}' is listed twice", "heads");
        var results = await RunAsync(heads, inputs, parameters, cancellationToken);
        return results.Select(r =>
        {
            var obj = new JsonObject();
            for (var h = 0; h < heads.Count; h++) obj[heads[h]] = r[h];
            return obj;
        }).ToList();
    }

    /// <summary>Encodes every input for every head, queues one job per input, and waits for all of them.</summary>
    private async Task<JsonNode[][]> RunAsync(IReadOnlyList<string> heads, IReadOnlyList<JsonElement> inputs, JsonElement parameters, CancellationToken cancellationToken)
    {
        // The lease keeps a swap out until this request's passes are done: it finishes on the heads and body it started with.
        using var lease = await _gate.EnterAsync(cancellationToken);
        var served = _served;
        var slots = heads.Select((name, i) => ReadySlot(served, name, heads.Count > 1 ? $"heads[{i}]" : null)).ToList();
        if (inputs.Count == 0) throw new ServingException(ServingError.BadRequest, "inputs must not be empty", "inputs");
        if (inputs.Count > _config.Host.MaxInputsPerRequest)
            throw new ServingException(ServingError.PayloadTooLarge,
                $"{inputs.Count} inputs in one request; at most {_config.Host.MaxInputsPerRequest} are accepted", "inputs");
        JsonStrings.Check(parameters, "parameters");
        CheckParameters(slots, parameters);
        var limits = _config.Host;
        var jobs = new InferenceJob[inputs.Count];
        long requestTokens = 0;
        for (var i = 0; i < inputs.Count; i++)
        {
            JsonStrings.Check(inputs[i], $"inputs[{i}]");
            jobs[i] = new InferenceJob(slots.Select(s => new HeadWork(s, Encode(served.Body.Body, s, inputs[i], parameters, i))).ToList(), cancellationToken);
            // Counted after tokenization, every window of a long text and every head's sequences included: what the body will run.
            if (jobs[i].Tokens > limits.MaxInputTokens)
                throw new ServingException(ServingError.TooMuchWork,
                    $"inputs[{i}] is {jobs[i].Tokens} tokens after tokenization ({jobs[i].RowCount} sequences); at most {limits.MaxInputTokens} per input (host.max_input_tokens)", $"inputs[{i}]");
            requestTokens += jobs[i].Tokens;
            if (requestTokens > limits.MaxRequestTokens)
                throw new ServingException(ServingError.TooMuchWork,
                    $"the inputs come to more than {limits.MaxRequestTokens} tokens after tokenization ({requestTokens} by inputs[{i}]); at most {limits.MaxRequestTokens} per request (host.max_request_tokens)", "inputs");
        }
        Scheduler.Enqueue(jobs);
        await Task.WhenAll(jobs.Select(j => j.Completion));

        return jobs.Select(j => j.Work.Select(w => w.Failure is null ? w.Output! : throw w.Failure).ToArray()).ToArray();
    }

    /// <summary>Request parameters none of the heads reads are refused (400 naming them), when every head says what it reads.</summary>
    private static void CheckParameters(IReadOnlyList<HeadSlot> slots, JsonElement parameters)
    {
        if (parameters.ValueKind != JsonValueKind.Object) return;
        var declared = slots.Select(s => s.Head!.Parameters).ToList();
        if (declared.Any(d => d is null)) return;
        var known = declared.SelectMany(d => d!).Distinct(StringComparer.Ordinal).ToList();
        foreach (var p in parameters.EnumerateObject())
        {
            if (known.Contains(p.Name, StringComparer.Ordinal)) continue;
            var suggestion = Core.Config.KeySuggestions.Closest(p.Name, known);
            var heads = slots.Count == 1 ? $"head {slots[0].Name}" : $"heads {string.Join(", ", slots.Select(s => s.Name))}";
            throw new ServingException(ServingError.BadRequest,
                $"unknown parameter '{p.Name}'{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")}; {heads} read{(slots.Count == 1 ? "s" : "")} {(known.Count == 0 ? "no parameters" : string.Join(", ", known))}",
                $"parameters.{p.Name}");
        }
    }

    private static HeadSlot ReadySlot(Served served, string name, string? field)
    {
        if (!served.ByName.TryGetValue(name, out var slot))
            throw new ServingException(ServingError.UnknownHead, $"no head named '{name}' (heads: {string.Join(", ", served.Slots.Select(s => s.Name))})", field);
        HeadStates.EnsureServable(slot.Name, slot.State, slot.Error, field);
        return slot;
    }

    private static HeadFeatures Encode(BertBody body, HeadSlot slot, JsonElement input, JsonElement parameters, int index)
    {
        HeadFeatures features;
        try
        {
            features = slot.Head!.Encode(input, parameters);
        }
        catch (HeadInputException e)
        {
            var field = string.IsNullOrEmpty(e.Field) ? $"inputs[{index}]" : $"inputs[{index}].{e.Field}";
            throw new ServingException(ServingError.InvalidInput, e.Message, field);
        }
        catch (Exception e)
        {
            slot.RecordServingError(e.Message);
            throw new ServingException(ServingError.Unavailable, $"head '{slot.Name}' failed while encoding input {index}: {e.Message}", $"inputs[{index}]", e);
        }
        CheckSequences(body, slot, features, index);
        return features;
    }

    // A plugin's encoding is checked before it reaches the shared body: a bad row must not fail other heads' requests.
    private static void CheckSequences(BertBody body, HeadSlot slot, HeadFeatures features, int index)
    {
        if (features.Sequences.Count == 0)
            throw new ServingException(ServingError.Unavailable, $"head '{slot.Name}' encoded input {index} to no sequence", $"inputs[{index}]");
        foreach (var s in features.Sequences)
        {
            if (s.Length == 0 || s.Length > body.MaxSequenceLength)
                throw new ServingException(ServingError.InvalidInput,
                    $"input is {s.Length} tokens; the body accepts 1 to {body.MaxSequenceLength}", $"inputs[{index}]");
            if (s.TokenTypeIds.Length != s.Length || s.InputIds.Any(id => id < 0 || id >= body.Config.VocabSize))
                throw new ServingException(ServingError.Unavailable, $"head '{slot.Name}' produced an invalid token sequence for input {index}", $"inputs[{index}]");
        }
    }

    private int _disposed;

    /// <summary>Drains the scheduler and releases heads, plugins and the body; a second call does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await Scheduler.DisposeAsync();
        var served = _served;
        foreach (var slot in served.Slots)
        {
            slot.Head?.Dispose();
            slot.DisposeAdapter();
        }
        _plugins.Dispose();
        served.Body.Release();
    }
}
