using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads;

/// <summary>Where a head's <c>weights:</c> entry points, as decided by <see cref="HeadWeights.Locate"/>.</summary>
public enum WeightsLocation
{
    /// <summary>No <c>weights:</c> entry: the head starts from freshly initialized weights.</summary>
    Fresh,

    /// <summary>A head folder a plugin saved (<c>head.json</c> + <c>head.safetensors</c>).</summary>
    HeadFolder,

    /// <summary>A Hugging Face task model folder (<c>config.json</c> + weights).</summary>
    HuggingFace,
}

/// <summary>
/// The weights plumbing every head kind shares: finding the weights, reading a saved head folder, loading stored tensors
/// into a module and saving a head folder. It lives in the contract assembly so that every plugin (built-in or third-party)
/// reads and writes head folders the same way and reports the same problems in the same words; what is particular to
/// a kind (its options, labels, Hugging Face architecture checks) stays in the plugin.
/// Every problem is a <see cref="HeadConfigurationException"/> on the <c>weights</c> field.
/// </summary>
public static class HeadWeights
{
    /// <summary>
    /// Prefix of the tensors in <c>head.safetensors</c> that belong to the head's body adapter (LoRA), which the host
    /// loads and applies in the body pass: <see cref="ReadTensors"/> leaves them out, so every head kind (third-party
    /// ones included) loads a LoRA head folder as it loads any other.
    /// </summary>
    public const string AdapterKeyPrefix = "lora/";

    /// <summary>
    /// Decides what a head's <c>weights:</c> path is. Checked in this order so that the most specific message wins: a
    /// file (a common mistake: pointing at head.safetensors), a missing path, a head folder (head.json wins over
    /// config.json, since a saved head folder may sit beside HF files), then a Hugging Face folder.
    /// </summary>
    /// <param name="path">The configured path, or null when the head has no <c>weights:</c>.</param>
    /// <param name="architecture">The Hugging Face class the kind imports (e.g. <c>BertForSequenceClassification</c>), for the messages.</param>
    public static WeightsLocation Locate(string? path, string architecture)
    {
        if (path is null) return WeightsLocation.Fresh;
        if (File.Exists(path))
            throw new HeadConfigurationException("weights", $"{path} is a file; weights must be a head folder (head.json + head.safetensors) or a Hugging Face {architecture} folder");
        if (!Directory.Exists(path))
            throw new HeadConfigurationException("weights", $"{path} does not exist");
        if (File.Exists(Path.Combine(path, HeadManifest.FileName))) return WeightsLocation.HeadFolder;
        if (HuggingFaceTaskModel.IsModelFolder(path)) return WeightsLocation.HuggingFace;
        throw new HeadConfigurationException("weights",
            $"{path} is neither a head folder ({HeadManifest.FileName} + {HeadManifest.WeightsFileName}) nor a Hugging Face model folder (config.json + weights)");
    }

    /// <summary>
    /// Reads <c>head.json</c> of a head folder and checks that it was saved by <paramref name="kind"/>: a head folder of
    /// another kind would otherwise fail later with a confusing tensor-shape message.
    /// </summary>
    public static HeadManifest ReadManifest(string folder, string kind)
    {
        var manifestPath = Path.Combine(folder, HeadManifest.FileName);
        HeadManifest manifest;
        try
        {
            manifest = HeadManifest.Read(manifestPath);
        }
        catch (Exception e) when (e is FormatException or IOException or InvalidOperationException)
        {
            // Named after the file, on the weights field: the user fixes the folder, not the YAML.
            throw new HeadConfigurationException("weights", $"{manifestPath}: {e.Message}");
        }
        if (manifest.Kind != kind)
            throw new HeadConfigurationException("weights", $"{folder} holds a '{manifest.Kind}' head, not a {kind} head");
        return manifest;
    }

    /// <summary>
    /// Reads every tensor of a head folder's <c>head.safetensors</c> (the caller disposes them). The checkpoint reader's
    /// own exceptions are wrapped so that a corrupt file is a configuration error naming the file, not a crash.
    /// </summary>
    public static IReadOnlyDictionary<string, Tensor> ReadTensors(HeadContext context, string folder)
    {
        ArgumentNullException.ThrowIfNull(context);
        var weightsFile = Path.Combine(folder, HeadManifest.WeightsFileName);
        if (!File.Exists(weightsFile))
            throw new HeadConfigurationException("weights", $"{folder} has {HeadManifest.FileName} but no {HeadManifest.WeightsFileName}");
        try
        {
            // A LoRA head folder also holds the body adapter the host applies (AdapterKeyPrefix): never the head module's.
            return context.Checkpoints.Read(weightsFile, name => !name.StartsWith(AdapterKeyPrefix, StringComparison.Ordinal));
        }
        catch (Exception e) when (e is not HeadConfigurationException)
        {
            throw new HeadConfigurationException("weights", $"cannot read {weightsFile}: {e.Message}");
        }
    }

    /// <summary>
    /// The options a head folder's head is built with: the saved ones (<c>head.json</c> options), each overridden by the
    /// configuration's. Keys are merged one by one so that a YAML entry setting only, say, <c>top_k</c> keeps the rest of
    /// what the head was trained with. Whether an override is allowed is the kind's business (checked before).
    /// </summary>
    /// <param name="saved">The manifest's options (left unchanged).</param>
    /// <param name="yaml">The head's YAML <c>options</c>; anything but an object contributes nothing.</param>
    public static JsonElement MergeOptions(JsonObject saved, JsonElement yaml)
    {
        ArgumentNullException.ThrowIfNull(saved);
        var merged = new JsonObject();
        foreach (var (k, v) in saved) merged[k] = v?.DeepClone();
        if (yaml.ValueKind == JsonValueKind.Object)
            foreach (var p in yaml.EnumerateObject()) merged[p.Name] = JsonNode.Parse(p.Value.GetRawText());
        return JsonSerializer.SerializeToElement(merged);
    }

    /// <summary>
    /// Copies stored tensors into <paramref name="module"/>'s parameters and buffers. Every mismatch is collected first
    /// (missing, unexpected, wrong shape) so that one message lists them all; nothing is copied unless all match, so a
    /// failed load leaves the module as it was.
    /// </summary>
    /// <param name="describe">Where the tensors came from, e.g. "the head folder /x", to start the message.</param>
    /// <param name="hint">What to check, appended after "; " (e.g. "check options.hidden_layers and the labels"); null for none.</param>
    public static void LoadInto(nn.Module module, IReadOnlyDictionary<string, Tensor> stored, string describe, string? hint = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(stored);
        var parameters = module.state_dict();
        var problems = Mismatches(parameters, stored);
        if (problems.Count > 0)
            throw new HeadConfigurationException("weights",
                $"{describe} does not match this head ({string.Join("; ", problems)}){(hint is null ? "" : $"; {hint}")}");
        using var noGrad = no_grad();   // copy_ into leaf parameters that require grad is only allowed without autograd
        foreach (var (name, parameter) in parameters) parameter.copy_(stored[name]);
    }

    /// <summary>
    /// Gives a freshly built head module its weights and puts it where the body runs: <paramref name="initializeFresh"/>
    /// when there are no stored tensors, otherwise <see cref="LoadInto"/>; then the body's device and dtype, in eval mode
    /// (serving never trains). On any failure the module is disposed, since the caller never gets it to dispose.
    /// </summary>
    /// <param name="stored">The tensors to load, or null for a fresh head.</param>
    /// <param name="initializeFresh">The kind's own initialization (its module knows its layers), run only for a fresh head.</param>
    public static void PrepareModule(nn.Module module, BodyInfo body, IReadOnlyDictionary<string, Tensor>? stored, Action initializeFresh,
        string describe, string? hint = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(initializeFresh);
        try
        {
            if (stored is null) initializeFresh();
            else LoadInto(module, stored, describe, hint);
            module.to(body.Device).to(body.DType);
            module.eval();
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Logs that a head's weights were trained on another body than the served one. Only a warning: the head still
    /// works, but its answers are those of a head reading features it was not trained on.
    /// </summary>
    public static void WarnIfStale(HeadContext context, string? trainedOn)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (trainedOn is not null && trainedOn != context.Body.Fingerprint)
            context.Logger.LogWarning(
                "Head {Head}: the weights in {Weights} were trained on body {TrainedOn}, the served body is {Body}: the head is stale",
                context.Name, context.WeightsPath, trainedOn, context.Body.Fingerprint);
    }

    /// <summary>Disposes tensors read by <see cref="ReadTensors"/> or a Hugging Face import once copied into a module (null: nothing).</summary>
    public static void DisposeAll(IReadOnlyDictionary<string, Tensor>? tensors)
    {
        if (tensors is null) return;
        foreach (var t in tensors.Values) t.Dispose();
    }

    /// <summary>The differences between a module's state and stored tensors, in a stable (ordinal) order for the message.</summary>
    private static List<string> Mismatches(IReadOnlyDictionary<string, Tensor> parameters, IReadOnlyDictionary<string, Tensor> stored)
    {
        var missing = parameters.Keys.Where(k => !stored.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var unexpected = stored.Keys.Where(k => !parameters.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        var problems = new List<string>();
        if (missing.Count > 0) problems.Add($"missing {string.Join(", ", missing)}");
        if (unexpected.Count > 0) problems.Add($"unexpected {string.Join(", ", unexpected)}");
        problems.AddRange(parameters.Where(p => stored.TryGetValue(p.Key, out var t) && !t.shape.SequenceEqual(p.Value.shape))
            .Select(p => $"{p.Key} is [{string.Join(",", stored[p.Key].shape)}], the head expects [{string.Join(",", p.Value.shape)}]"));
        return problems;
    }

    /// <summary>
    /// Saves a head folder: <c>head.safetensors</c> (the module's state, with the metadata transformers and safetensors
    /// tools expect plus the kind) and then <c>head.json</c>. The manifest is written last so that a folder with a manifest
    /// always has its weights (both writes are atomic).
    /// </summary>
    public static void Save(HeadContext context, string folder, nn.Module module, HeadManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(manifest);
        Directory.CreateDirectory(folder);
        context.Checkpoints.Save(Path.Combine(folder, HeadManifest.WeightsFileName), module.state_dict(),
            new Dictionary<string, string> { ["format"] = "pt", ["kind"] = manifest.Kind });
        manifest.Write(folder);
    }
}
