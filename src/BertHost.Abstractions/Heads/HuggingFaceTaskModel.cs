using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// A Hugging Face <c>BertFor...</c> task folder given as a head's <c>weights</c>: its config.json (with the
/// <c>id2label</c> labels), its task-head tensors, and the check that its <c>bert.*</c> body is the served body.
/// Every problem is a <see cref="HeadConfigurationException"/> on the <c>weights</c> field.
/// </summary>
public sealed class HuggingFaceTaskModel
{
    private readonly HeadContext _context;

    private HuggingFaceTaskModel(HeadContext context, string folder, string architecture, JsonObject config, IReadOnlyList<string>? labels)
    {
        _context = context;
        Folder = folder;
        Architecture = architecture;
        Config = config;
        Labels = labels;
    }

    public string Folder { get; }

    /// <summary>The transformers class the folder is expected to hold, for messages (e.g. <c>BertForTokenClassification</c>).</summary>
    public string Architecture { get; }

    public JsonObject Config { get; }

    /// <summary>Labels from <c>id2label</c>, in id order; null when the config has none.</summary>
    public IReadOnlyList<string>? Labels { get; }

    /// <summary>A folder with a config.json is a Hugging Face model folder (a head folder has head.json instead).</summary>
    public static bool IsModelFolder(string folder) => File.Exists(Path.Combine(folder, "config.json"));

    public static HuggingFaceTaskModel Open(HeadContext context, string folder, string architecture)
    {
        var configPath = Path.Combine(folder, "config.json");
        JsonObject config;
        try
        {
            config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new FormatException("not a JSON object");
        }
        catch (Exception e) when (e is JsonException or FormatException or IOException)
        {
            throw new HeadConfigurationException("weights", $"{configPath}: {e.Message}");
        }
        return new HuggingFaceTaskModel(context, folder, architecture, config, ReadLabels(config, configPath));
    }

    /// <summary>
    /// The task-head tensors (stored names starting with <paramref name="prefix"/>, e.g. <c>classifier.</c>), after
    /// checking that the folder's body is the served body. The caller disposes the tensors.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> ReadHeadTensors(string prefix)
    {
        IReadOnlyDictionary<string, Tensor> tensors;
        try
        {
            tensors = _context.Checkpoints.Read(Folder, n => n.StartsWith(prefix, StringComparison.Ordinal));
        }
        catch (Exception e)
        {
            throw new HeadConfigurationException("weights", $"cannot read {Folder}: {e.Message}");
        }
        try
        {
            if (tensors.Count == 0)
                throw new HeadConfigurationException("weights", $"{Folder} has no {prefix}* weights: it is not a {Architecture} checkpoint");
            VerifyBody();
            return tensors;
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The folder's body must be the served body: a task head is only right on the body it was fine-tuned with. Task
    /// models saved without a pooler (token classification, question answering) are matched on the encoder alone.
    /// </summary>
    public void VerifyBody()
    {
        string fingerprint, served;
        try
        {
            var encoderOnly = !_context.Checkpoints.ListTensors(Folder).Any(IsPoolerKey);
            fingerprint = _context.Checkpoints.BodyFingerprint(Folder, encoderOnly);
            served = encoderOnly ? _context.Body.EncoderFingerprint ?? _context.Body.Fingerprint : _context.Body.Fingerprint;
        }
        catch (Exception e)
        {
            throw new HeadConfigurationException("weights", $"the body weights of {Folder} cannot be read to check them against the served body: {e.Message}");
        }
        if (fingerprint != served)
            throw new HeadConfigurationException("weights",
                $"{Folder} was fine-tuned on another body (fingerprint {fingerprint}, the served body is {served}): " +
                "serve it with that folder as body.checkpoint, or train this head on the served body");
    }

    private static bool IsPoolerKey(string name) =>
        name.StartsWith("pooler.", StringComparison.Ordinal) || name.StartsWith("bert.pooler.", StringComparison.Ordinal);

    /// <summary>A number from config.json (e.g. <c>classifier_dropout</c>), or null.</summary>
    public double? Number(string key) => Config[key] is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    /// <summary>A string from config.json (e.g. <c>problem_type</c>), or null.</summary>
    public string? String(string key) => Config[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private static IReadOnlyList<string>? ReadLabels(JsonObject config, string configPath)
    {
        if (config["id2label"] is not JsonObject id2label) return null;
        var pairs = new List<(int Id, string Label)>();
        foreach (var (k, v) in id2label)
        {
            if (!int.TryParse(k, out var id) || v is not JsonValue lv || !lv.TryGetValue<string>(out var label))
                throw new HeadConfigurationException("weights", $"{configPath}: id2label entry '{k}' is not an integer id with a label name");
            pairs.Add((id, label));
        }
        pairs.Sort((a, b) => a.Id.CompareTo(b.Id));
        if (pairs.Select(p => p.Id).Where((id, i) => id != i).Any())
            throw new HeadConfigurationException("weights", $"{configPath}: id2label ids must be 0..{pairs.Count - 1}");
        return pairs.Select(p => p.Label).ToList();
    }
}
