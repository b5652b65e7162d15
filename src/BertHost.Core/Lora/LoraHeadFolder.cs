using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using static TorchSharp.torch;

namespace BertHost.Core.Lora;

/// <summary>
/// A LoRA head folder: an ordinary head folder (the plugin's <c>head.json</c> + <c>head.safetensors</c>) whose
/// <c>head.safetensors</c> also holds the body adapter as <c>lora/MODULE.lora_A.weight</c> / <c>lora/MODULE.lora_B.weight</c>
/// and whose <c>head.json</c> has a <c>lora</c> object (r, lora_alpha, lora_dropout, target_modules, plus the adapter's
/// parameter count and bytes). Plugins never see the adapter tensors (<see cref="HeadWeights.ReadTensors"/> leaves them
/// out), so every head kind gets adapters without code; the host reads them here. The head stays bound to the body
/// fingerprint in head.json, the base body's: the adapter needs that body's weights.
/// </summary>
public static class LoraHeadFolder
{
    /// <summary>The field of head.json describing the adapter.</summary>
    public const string ManifestField = "lora";

    /// <summary>Adds <paramref name="adapter"/> to the head folder a plugin just saved (both files rewritten atomically, head.json last).</summary>
    public static void Attach(string folder, LoraAdapter adapter) =>
        Attach(folder, adapter.Settings, adapter.NamedParameters().ToDictionary(p => p.Key, p => (Tensor)p.Parameter));

    /// <summary>
    /// Puts adapter tensors keyed <c>MODULE.lora_A.weight</c> / <c>MODULE.lora_B.weight</c> into a saved head folder,
    /// replacing any adapter it had (both files rewritten atomically, head.json last).
    /// </summary>
    public static void Attach(string folder, LoraSettings settings, IReadOnlyDictionary<string, Tensor> adapterTensors)
    {
        var weightsPath = Path.Combine(folder, HeadManifest.WeightsFileName);
        var manifestPath = Path.Combine(folder, HeadManifest.FileName);
        if (!File.Exists(weightsPath) || !File.Exists(manifestPath))
            throw new InvalidOperationException($"{folder} is not a saved head folder ({HeadManifest.FileName} + {HeadManifest.WeightsFileName})");
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        Dictionary<string, string> metadata;
        try
        {
            using (var file = SafetensorsFile.Open(weightsPath))
            {
                metadata = new Dictionary<string, string>(file.Metadata);
                foreach (var info in file.Tensors.Where(t => !t.Name.StartsWith(LoraAdapter.KeyPrefix, StringComparison.Ordinal)))
                    tensors[info.Name] = file.Read(info.Name);
            }
            metadata[ManifestField] = settings.ToJson().ToJsonString();
            SafetensorsWriter.Save(weightsPath, tensors.Concat(adapterTensors.Select(kv => KeyValuePair.Create(LoraAdapter.KeyPrefix + kv.Key, kv.Value))), metadata);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        var manifest = JsonNode.Parse(File.ReadAllText(manifestPath))!.AsObject();
        var lora = settings.ToJson();
        lora["parameters"] = adapterTensors.Values.Sum(t => t.NumberOfElements);
        lora["bytes"] = adapterTensors.Values.Sum(t => t.NumberOfElements * t.ElementSize);
        manifest[ManifestField] = lora;
        var temp = manifestPath + $".{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, manifest.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(temp, manifestPath, overwrite: true);
    }

    /// <summary>The adapter tensors of a head folder keyed <c>MODULE.lora_A.weight</c> (the caller disposes them); empty when it has none.</summary>
    public static Dictionary<string, Tensor> ReadTensors(string folder)
    {
        var weightsPath = Path.Combine(folder, HeadManifest.WeightsFileName);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var file = SafetensorsFile.Open(weightsPath);
        foreach (var info in file.Tensors.Where(t => t.Name.StartsWith(LoraAdapter.KeyPrefix, StringComparison.Ordinal)))
            tensors[info.Name[LoraAdapter.KeyPrefix.Length..]] = file.Read(info.Name);
        return tensors;
    }

    /// <summary>The adapter settings a head folder declares in head.json (null: no adapter). Errors name the file.</summary>
    public static LoraSettings? ReadSettings(string folder)
    {
        var manifestPath = Path.Combine(folder, HeadManifest.FileName);
        if (!File.Exists(manifestPath)) return null;
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(manifestPath));
        }
        catch (JsonException e)
        {
            throw new FormatException($"{manifestPath} is not valid JSON: {e.Message}");
        }
        return root?[ManifestField] switch
        {
            null => null,
            JsonObject o => LoraSettings.FromJson(o, $"{manifestPath}: {ManifestField}"),
            _ => throw new FormatException($"{manifestPath}: '{ManifestField}' must be an object"),
        };
    }

    /// <summary>Whether the head folder carries an adapter.</summary>
    public static bool HasAdapter(string? folder) => folder is not null && Directory.Exists(folder) && ReadSettings(folder) is not null;

    /// <summary>The head folder's adapter for <paramref name="model"/>, or null when it has none. Errors (FormatException) name the file and the tensor.</summary>
    public static LoraAdapter? Read(string folder, BertModel model)
    {
        var settings = ReadSettings(folder);
        if (settings is null) return null;
        var weightsPath = Path.Combine(folder, HeadManifest.WeightsFileName);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            using (var file = SafetensorsFile.Open(weightsPath))
                foreach (var info in file.Tensors.Where(t => t.Name.StartsWith(LoraAdapter.KeyPrefix, StringComparison.Ordinal)))
                    tensors[info.Name[LoraAdapter.KeyPrefix.Length..]] = file.Read(info.Name);
            return LoraAdapter.FromTensors(model, settings, tensors, weightsPath);
        }
        catch (CheckpointException e)
        {
            throw new FormatException($"cannot read the adapter in {weightsPath}: {e.Message}");
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
