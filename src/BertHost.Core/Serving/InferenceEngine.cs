using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Config;
using BertHost.Core.Plugins;
using Microsoft.Extensions.Logging;

namespace BertHost.Core.Serving;

/// <summary>
/// The serving core: ONE body, the heads of the deployment (each loaded in isolation: a head that fails to load is
/// reported and the others serve), and the scheduler that batches their requests through shared body passes.
/// </summary>
public sealed class InferenceEngine : IInferenceEngine, IAsyncDisposable
{
    private readonly HostConfig _config;
    private readonly PluginCatalog _plugins;
    private readonly IReadOnlyList<HeadSlot> _slots;
    private readonly Dictionary<string, HeadSlot> _byName;

    private InferenceEngine(HostConfig config, BertBody body, PluginCatalog plugins, IReadOnlyList<HeadSlot> slots,
        ServingMetrics metrics, ILogger logger)
    {
        _config = config;
        Body = body;
        _plugins = plugins;
        _slots = slots;
        _byName = slots.ToDictionary(s => s.Name, StringComparer.OrdinalIgnoreCase);
        Scheduler = new BatchScheduler(body, config.Batching, metrics, logger);
        metrics.SetHeadsReady(slots.Count(s => s.IsReady), slots.Count(s => !s.IsReady));
    }

    public BertBody Body { get; }
    public BatchScheduler Scheduler { get; }

    /// <summary>
    /// Loads the body (a body that does not load stops the host: <see cref="BodyLoadException"/>) and every head.
    /// </summary>
    public static InferenceEngine Start(HostConfig config, ILoggerFactory loggers, ServingMetrics metrics)
    {
        var logger = loggers.CreateLogger<InferenceEngine>();
        var body = DeploymentLoading.LoadBody(config);
        logger.LogInformation("body {Folder} loaded on {Device} as {DType}: {Layers} layers, hidden {Hidden}, {Fingerprint}",
            body.Folder, body.Device, body.DType, body.Config.NumHiddenLayers, body.Config.HiddenSize, body.Fingerprint);
        var plugins = new PluginCatalog(loggers.CreateLogger<PluginCatalog>());
        var store = DeploymentLoading.CheckpointStoreFor(body);
        var slots = config.Heads.Select(h => LoadHead(config, h, body, plugins, store, loggers)).ToList();
        return new InferenceEngine(config, body, plugins, slots, metrics, logger);
    }

    private static HeadSlot LoadHead(HostConfig config, HeadSection section, BertBody body, PluginCatalog plugins, ICheckpointStore store, ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger($"BertHost.Heads.{section.Name}");
        LoadedKind? kind = null;
        try
        {
            kind = plugins.Resolve(section.Plugin, section.Sha256, section.Kind);
            var head = kind.CreateHead(DeploymentLoading.ContextFor(config, section, body, store, loggers));
            if (head.TrainedOnFingerprint is { } trainedOn && trainedOn != body.Fingerprint)
            {
                var why = $"head '{section.Name}' was trained on body {trainedOn}, but the served body is {body.Fingerprint}: retrain it on this body";
                logger.LogWarning("{Reason}", why);
                return new HeadSlot(section.Name, section.Kind, head, HeadStates.Stale, why, kind.AssemblyPath, kind.Sha256);
            }
            logger.LogInformation("head {Head} ({Kind}) ready", section.Name, section.Kind);
            return new HeadSlot(section.Name, section.Kind, head, HeadStates.Ready, null, kind.AssemblyPath, kind.Sha256);
        }
        catch (Exception e)
        {
            var why = e switch
            {
                HeadConfigurationException c => $"{c.Field}: {c.Message}",
                PluginLoadException => e.Message,
                _ => $"{e.GetType().Name}: {e.Message}",
            };
            logger.LogError(e, "head {Head} failed to load: {Reason}", section.Name, why);
            return new HeadSlot(section.Name, section.Kind, null, HeadStates.Failed, why, kind?.AssemblyPath, kind?.Sha256);
        }
    }

    public bool IsReady => true;

    public IReadOnlyList<HeadStatus> Heads => _slots.Select(s => s.ToStatus(withDetails: false)).ToList();

    public HeadStatus? FindHead(string name) => _byName.TryGetValue(name, out var slot) ? slot.ToStatus(withDetails: true) : null;

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
        ["body_passes"] = Scheduler.BodyPasses,
        ["body_rows"] = Scheduler.BodyRows,
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
        var slots = heads.Select((name, i) => ReadySlot(name, heads.Count > 1 ? $"heads[{i}]" : null)).ToList();
        if (inputs.Count == 0) throw new ServingException(ServingError.BadRequest, "inputs must not be empty", "inputs");
        if (inputs.Count > _config.Host.MaxInputsPerRequest)
            throw new ServingException(ServingError.PayloadTooLarge,
                $"{inputs.Count} inputs in one request; at most {_config.Host.MaxInputsPerRequest} are accepted", "inputs");
        var jobs = new InferenceJob[inputs.Count];
        for (var i = 0; i < inputs.Count; i++)
            jobs[i] = new InferenceJob(slots.Select(s => new HeadWork(s, Encode(s, inputs[i], parameters, i))).ToList(), cancellationToken);
        Scheduler.Enqueue(jobs);
        await Task.WhenAll(jobs.Select(j => j.Completion));

        return jobs.Select(j => j.Work.Select(w => w.Failure is null ? w.Output! : throw w.Failure).ToArray()).ToArray();
    }

    private HeadSlot ReadySlot(string name, string? field)
    {
        if (!_byName.TryGetValue(name, out var slot))
            throw new ServingException(ServingError.UnknownHead, $"no head named '{name}' (heads: {string.Join(", ", _slots.Select(s => s.Name))})", field);
        if (!slot.IsReady)
            throw new ServingException(ServingError.Unavailable, $"head '{name}' is {slot.State}: {slot.Error}", field);
        return slot;
    }

    private HeadFeatures Encode(HeadSlot slot, JsonElement input, JsonElement parameters, int index)
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
        CheckSequences(slot, features, index);
        return features;
    }

    // A plugin's encoding is checked before it reaches the shared body: a bad row must not fail other heads' requests.
    private void CheckSequences(HeadSlot slot, HeadFeatures features, int index)
    {
        if (features.Sequences.Count == 0)
            throw new ServingException(ServingError.Unavailable, $"head '{slot.Name}' encoded input {index} to no sequence", $"inputs[{index}]");
        foreach (var s in features.Sequences)
        {
            if (s.Length == 0 || s.Length > Body.MaxSequenceLength)
                throw new ServingException(ServingError.InvalidInput,
                    $"input is {s.Length} tokens; the body accepts 1 to {Body.MaxSequenceLength}", $"inputs[{index}]");
            if (s.TokenTypeIds.Length != s.Length || s.InputIds.Any(id => id < 0 || id >= Body.Config.VocabSize))
                throw new ServingException(ServingError.Unavailable, $"head '{slot.Name}' produced an invalid token sequence for input {index}", $"inputs[{index}]");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Scheduler.DisposeAsync();
        foreach (var slot in _slots) slot.Head?.Dispose();
        _plugins.Dispose();
        Body.Dispose();
    }
}
