using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using BertHost.Core.Checkpoints;
using static TorchSharp.torch;

namespace BertHost.Core.Training;

/// <summary>
/// A resumable training checkpoint in a folder: one safetensors file of tensors (trainable weights, AdamW moments, the
/// best epoch's weights) and <see cref="StateFile"/>, the JSON state that names that file. The JSON is written last and
/// atomically, so a checkpoint exists exactly when its state file does; a crash while writing leaves the previous one.
/// </summary>
public static class TrainingCheckpoint
{
    public const string StateFile = "checkpoint.json";
    private const string WeightsPrefix = "checkpoint-";
    private const int Version = 1;

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Whether <paramref name="directory"/> holds a complete checkpoint (its state file).</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, StateFile));

    /// <summary>Where the checkpoint in <paramref name="directory"/> stands; null when there is none.</summary>
    /// <exception cref="TrainingCheckpointException">The state file is unreadable.</exception>
    public static TrainingCheckpointInfo? Describe(string directory)
    {
        if (!Exists(directory)) return null;
        var s = ReadState(directory);
        return new TrainingCheckpointInfo(s.Epoch, s.StepInEpoch, s.GlobalStep, s.Epochs.Count, s.SavedAt);
    }

    internal static CheckpointState ReadState(string directory)
    {
        var path = Path.Combine(directory, StateFile);
        CheckpointState? state;
        try
        {
            state = JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new TrainingCheckpointException($"{path} is not a valid training checkpoint: {e.Message}");
        }
        if (state is null || state.Version != Version || string.IsNullOrEmpty(state.Weights) || state.Identity is null)
            throw new TrainingCheckpointException($"{path} is not a valid training checkpoint (version {state?.Version}, expected {Version})");
        return state;
    }

    /// <summary>The tensors of the checkpoint whose state is <paramref name="state"/>, on the CPU.</summary>
    internal static Dictionary<string, Tensor> ReadTensors(string directory, CheckpointState state)
    {
        var path = Path.Combine(directory, state.Weights);
        if (!File.Exists(path))
            throw new TrainingCheckpointException($"{Path.Combine(directory, StateFile)} names {state.Weights}, which is missing: the checkpoint is incomplete");
        try
        {
            using var file = SafetensorsFile.Open(path);
            return file.Tensors.ToDictionary(t => t.Name, t => file.Read(t.Name));
        }
        catch (CheckpointException e)
        {
            throw new TrainingCheckpointException($"checkpoint weights {path} cannot be read: {e.Message}");
        }
    }

    /// <summary>Writes the tensors, then the state naming them, then removes the files of older checkpoints.</summary>
    internal static void Write(string directory, CheckpointState state, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        Directory.CreateDirectory(directory);
        state.Version = Version;
        state.SavedAt = DateTimeOffset.UtcNow;
        state.Weights = $"{WeightsPrefix}{state.GlobalStep:D8}-{Guid.NewGuid():N}.safetensors";
        SafetensorsWriter.Save(Path.Combine(directory, state.Weights), tensors);
        AtomicFile.WriteAllText(Path.Combine(directory, StateFile), JsonSerializer.Serialize(state, Json));
        foreach (var old in Directory.EnumerateFiles(directory, WeightsPrefix + "*.safetensors"))
            if (Path.GetFileName(old) != state.Weights)
                try { File.Delete(old); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>The differences between a checkpoint's identity and this run's, as "path: checkpoint X, this run Y".</summary>
    internal static List<string> Differences(JsonNode? saved, JsonNode? current, string path = "")
    {
        var diffs = new List<string>();
        if (saved is JsonObject so && current is JsonObject co)
        {
            foreach (var key in so.Select(kv => kv.Key).Union(co.Select(kv => kv.Key)))
                diffs.AddRange(Differences(so[key], co[key], path.Length == 0 ? key : $"{path}.{key}"));
        }
        else if (saved is JsonArray sa && current is JsonArray ca && sa.Count == ca.Count)
        {
            for (var i = 0; i < sa.Count; i++) diffs.AddRange(Differences(sa[i], ca[i], $"{path}[{i}]"));
        }
        else if (!JsonNode.DeepEquals(saved, current))
        {
            diffs.Add($"{path}: checkpoint {saved?.ToJsonString() ?? "null"}, this run {current?.ToJsonString() ?? "null"}");
        }
        return diffs;
    }
}

/// <summary>Where a checkpoint stands: <paramref name="Epoch"/> is the epoch in progress, <paramref name="StepInEpoch"/> its optimizer steps done.</summary>
public sealed record TrainingCheckpointInfo(int Epoch, int StepInEpoch, int GlobalStep, int CompletedEpochs, DateTimeOffset SavedAt);

/// <summary>A checkpoint cannot be used: unreadable, incomplete, or written by a different run (the message says what differs).</summary>
public sealed class TrainingCheckpointException(string message) : Exception(message);

/// <summary>The JSON state of a checkpoint (everything but tensors).</summary>
internal sealed class CheckpointState
{
    public int Version { get; set; }
    public DateTimeOffset SavedAt { get; set; }

    /// <summary>File name of the tensors, in the same folder.</summary>
    public string Weights { get; set; } = "";

    /// <summary>Options, body fingerprint and tasks (head, labels, data hashes) a resumed run must match.</summary>
    public JsonObject? Identity { get; set; }

    /// <summary>The epoch in progress (1-based); past the last epoch when the run has finished.</summary>
    public int Epoch { get; set; }

    /// <summary>Optimizer steps done in <see cref="Epoch"/>.</summary>
    public int StepInEpoch { get; set; }

    public int GlobalStep { get; set; }
    public double[] LossSums { get; set; } = [];
    public int[] LossCounts { get; set; } = [];
    public long EpochExamples { get; set; }
    public double EpochSeconds { get; set; }
    public List<EpochResult> Epochs { get; set; } = [];
    public int? BestEpoch { get; set; }
    public Dictionary<string, double>? BestMetrics { get; set; }
    public int SinceBest { get; set; }
    public bool StoppedEarly { get; set; }

    /// <summary>AdamW's per-parameter step count, by parameter key.</summary>
    public Dictionary<string, long> OptimizerSteps { get; set; } = [];
}
