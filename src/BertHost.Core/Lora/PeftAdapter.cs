using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Core.Checkpoints;
using static TorchSharp.torch;

namespace BertHost.Core.Lora;

/// <summary>
/// Hugging Face PEFT LoRA folders: <c>adapter_config.json</c> (peft_type LORA, r, lora_alpha, lora_dropout,
/// target_modules, bias "none", ...) and <c>adapter_model.safetensors</c> whose keys are the PEFT model's parameter names
/// with the adapter name left out, e.g. <c>base_model.model.encoder.layer.0.attention.self.query.lora_A.weight</c> for a
/// <c>BertModel</c> base (<c>base_model.model.bert.encoder...</c> for a task model such as
/// BertForSequenceClassification; both are read, the first is written). A [r,in] and B [out,r] as here, scale
/// lora_alpha / r.
/// </summary>
public static class PeftAdapter
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";
    private const string Prefix = "base_model.model.";

    /// <summary>Writes the adapter of a LoRA head folder as a PEFT folder; returns the number of tensors written.</summary>
    public static int Export(string headFolder, string outFolder, string? baseModel = null)
    {
        var settings = LoraHeadFolder.ReadSettings(headFolder) ?? throw new FormatException($"{headFolder} holds no LoRA adapter (its head.json has no 'lora')");
        var tensors = LoraHeadFolder.ReadTensors(headFolder);
        try
        {
            if (tensors.Count == 0) throw new FormatException($"{headFolder}: head.json declares an adapter but head.safetensors has no lora/ tensors");
            Directory.CreateDirectory(outFolder);
            SafetensorsWriter.Save(Path.Combine(outFolder, WeightsFile), tensors.Select(kv => KeyValuePair.Create(Prefix + kv.Key, kv.Value)),
                new Dictionary<string, string> { ["format"] = "pt" });
            File.WriteAllText(Path.Combine(outFolder, ConfigFile), Config(settings, baseModel).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            return tensors.Count;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>The adapter_config.json PEFT writes for a LoRA adapter (PEFT 0.x field set; bias none, no DoRA, no rsLoRA).</summary>
    public static JsonObject Config(LoraSettings settings, string? baseModel) => new()
    {
        ["alpha_pattern"] = new JsonObject(),
        ["auto_mapping"] = null,
        ["base_model_name_or_path"] = baseModel,
        ["bias"] = "none",
        ["fan_in_fan_out"] = false,
        ["inference_mode"] = true,
        ["init_lora_weights"] = true,
        ["layers_pattern"] = null,
        ["layers_to_transform"] = null,
        ["lora_alpha"] = settings.Alpha,
        ["lora_dropout"] = settings.Dropout,
        ["modules_to_save"] = null,
        ["peft_type"] = "LORA",
        ["r"] = settings.Rank,
        ["rank_pattern"] = new JsonObject(),
        ["revision"] = null,
        // PEFT writes "all-linear" as that string, a list of names otherwise.
        ["target_modules"] = settings.TargetModules is [LoraSettings.AllLinear] ? LoraSettings.AllLinear : new JsonArray(settings.TargetModules.Select(t => (JsonNode)t).ToArray()),
        ["task_type"] = null,
        ["use_dora"] = false,
        ["use_rslora"] = false,
    };

    /// <summary>
    /// Reads a PEFT LoRA folder: its settings and its tensors keyed <c>MODULE.lora_A.weight</c> (the caller disposes them).
    /// What this host cannot compute the same way (DoRA, rsLoRA, per-module ranks or alphas, biases, fan_in_fan_out,
    /// another PEFT type) is refused with the field named. <paramref name="ignored"/> lists tensors that are not LoRA
    /// weights of the encoder (e.g. a classifier in modules_to_save).
    /// </summary>
    public static (LoraSettings Settings, Dictionary<string, Tensor> Tensors) Read(string peftFolder, out List<string> ignored)
    {
        var configPath = Path.Combine(peftFolder, ConfigFile);
        if (!File.Exists(configPath)) throw new FormatException($"{peftFolder} has no {ConfigFile} (not a PEFT adapter folder)");
        JsonObject config;
        try
        {
            config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new FormatException($"{configPath} must hold a JSON object");
        }
        catch (JsonException e)
        {
            throw new FormatException($"{configPath} is not valid JSON: {e.Message}");
        }
        string? Text(string key) => config[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
        bool Flag(string key) => config[key] is JsonValue v && v.TryGetValue<bool>(out var b) && b;
        bool NonEmpty(string key) => config[key] is JsonObject o && o.Count > 0;
        if (Text("peft_type") is { } type && type != "LORA") throw new FormatException($"{configPath}: peft_type '{type}' is not LORA");
        if (Text("bias") is { } bias && bias != "none") throw new FormatException($"{configPath}: bias '{bias}' is not supported (only bias \"none\": the body's biases stay as they are)");
        if (Flag("use_dora")) throw new FormatException($"{configPath}: use_dora is not supported (DoRA rescales the weight's columns; only plain LoRA is)");
        if (Flag("use_rslora")) throw new FormatException($"{configPath}: use_rslora is not supported (its scale is alpha/sqrt(r); only alpha/r is)");
        if (Flag("fan_in_fan_out")) throw new FormatException($"{configPath}: fan_in_fan_out is for Conv1D layers (GPT-2), which BERT has none of");
        if (NonEmpty("rank_pattern")) throw new FormatException($"{configPath}: rank_pattern (per-module ranks) is not supported");
        if (NonEmpty("alpha_pattern")) throw new FormatException($"{configPath}: alpha_pattern (per-module alphas) is not supported");
        var settings = LoraSettings.FromJson(config, configPath);

        var weightsPath = Path.Combine(peftFolder, WeightsFile);
        if (!File.Exists(weightsPath))
            throw new FormatException(File.Exists(Path.Combine(peftFolder, "adapter_model.bin"))
                ? $"{peftFolder} has adapter_model.bin; save the adapter with safe_serialization=True (adapter_model.safetensors)"
                : $"{peftFolder} has no {WeightsFile}");
        ignored = [];
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            using var file = SafetensorsFile.Open(weightsPath);
            foreach (var info in file.Tensors)
            {
                var name = info.Name.StartsWith(Prefix, StringComparison.Ordinal) ? info.Name[Prefix.Length..] : info.Name;
                if (name.StartsWith("bert.", StringComparison.Ordinal)) name = name["bert.".Length..];
                if (!name.StartsWith("encoder.layer.", StringComparison.Ordinal) || !(name.EndsWith(".lora_A.weight", StringComparison.Ordinal) || name.EndsWith(".lora_B.weight", StringComparison.Ordinal)))
                {
                    ignored.Add(info.Name);
                    continue;
                }
                var t = file.Read(info.Name);
                tensors[name] = t;
                if (name.EndsWith(".lora_A.weight", StringComparison.Ordinal) && t.shape[0] != settings.Rank)
                    throw new FormatException($"{weightsPath}: {info.Name} is [{string.Join(",", t.shape)}], but r is {settings.Rank}");
                if (name.EndsWith(".lora_B.weight", StringComparison.Ordinal) && t.shape[1] != settings.Rank)
                    throw new FormatException($"{weightsPath}: {info.Name} is [{string.Join(",", t.shape)}], but r is {settings.Rank}");
            }
            foreach (var key in tensors.Keys)
            {
                var module = key[..^".lora_A.weight".Length];
                if (!tensors.ContainsKey(module + ".lora_A.weight") || !tensors.ContainsKey(module + ".lora_B.weight"))
                    throw new FormatException($"{weightsPath}: {module} has only one of lora_A and lora_B");
            }
            if (tensors.Count == 0) throw new FormatException($"{weightsPath} has no LoRA weights of the encoder layers (keys like {Prefix}encoder.layer.0.attention.self.query.lora_A.weight)");
            return (settings, tensors);
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>Puts a PEFT folder's adapter into a saved head folder (replacing its adapter, if any); returns the modules adapted.</summary>
    public static int Import(string peftFolder, string headFolder, out List<string> ignored)
    {
        var (settings, tensors) = Read(peftFolder, out ignored);
        try
        {
            LoraHeadFolder.Attach(headFolder, settings, tensors);
            return tensors.Count / 2;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
