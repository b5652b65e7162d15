using System.Text.Json;
using System.Text.Json.Serialization;

namespace BertHost.Core.Bert;

/// <summary>
/// The encoder's shape and activation, read from a Hugging Face <c>config.json</c>. Field names and defaults follow
/// transformers' <c>BertConfig</c>, so a published config file is read as is.
/// </summary>
public sealed record BertConfig
{
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 30522;
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 768;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 12;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 3072;
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "gelu";
    [JsonPropertyName("hidden_dropout_prob")] public double HiddenDropoutProb { get; init; } = 0.1;
    [JsonPropertyName("attention_probs_dropout_prob")] public double AttentionProbsDropoutProb { get; init; } = 0.1;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 512;
    [JsonPropertyName("type_vocab_size")] public int TypeVocabSize { get; init; } = 2;
    [JsonPropertyName("initializer_range")] public double InitializerRange { get; init; } = 0.02;
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-12;
    [JsonPropertyName("pad_token_id")] public int PadTokenId { get; init; }
    [JsonPropertyName("position_embedding_type")] public string PositionEmbeddingType { get; init; } = "absolute";
    [JsonPropertyName("model_type")] public string? ModelType { get; init; } = "bert";
    [JsonPropertyName("architectures")] public string[]? Architectures { get; init; }
    [JsonPropertyName("id2label")] public Dictionary<string, string>? Id2Label { get; init; }
    [JsonPropertyName("label2id")] public Dictionary<string, int>? Label2Id { get; init; }

    /// <summary>Activations the encoder implements, by their transformers names.</summary>
    public static IReadOnlyList<string> SupportedActivations { get; } = ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish"];

    /// <summary>Model types whose checkpoints have BERT's layout (same keys, same maths).</summary>
    public static IReadOnlyList<string> SupportedModelTypes { get; } = ["bert"];

    [JsonIgnore] public int HeadDim => HiddenSize / NumAttentionHeads;

    private static readonly JsonSerializerOptions ReadOptions = new()
    {
        AllowTrailingCommas = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
    };

    private static readonly JsonSerializerOptions WriteOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Reads and validates <c>config.json</c>; every problem is a <see cref="BertConfigException"/> naming the file and field.</summary>
    public static BertConfig Load(string path)
    {
        if (!File.Exists(path)) throw new BertConfigException($"{path}: file not found (a Hugging Face model folder needs config.json)");
        BertConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<BertConfig>(File.ReadAllText(path), ReadOptions);
        }
        catch (JsonException e)
        {
            var where = e.Path is { Length: > 0 } p ? $" at {p.TrimStart('$', '.')}" : "";
            throw new BertConfigException($"{path}: not valid JSON for a BERT config{where} (line {e.LineNumber + 1}): {e.Message}");
        }
        if (config is null) throw new BertConfigException($"{path}: empty config");
        var problems = config.Validate();
        if (problems.Count > 0) throw new BertConfigException($"{path}: {string.Join("; ", problems)}");
        return config;
    }

    public static BertConfig Parse(string json) =>
        JsonSerializer.Deserialize<BertConfig>(json, ReadOptions) ?? throw new BertConfigException("empty config");

    public string ToJson() => JsonSerializer.Serialize(this, WriteOptions);

    /// <summary>Problems that stop the encoder from honouring this config, each naming its field.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        void Positive(string field, int value)
        {
            if (value <= 0) problems.Add($"{field} must be positive, got {value}");
        }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("intermediate_size", IntermediateSize);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        Positive("type_vocab_size", TypeVocabSize);
        if (NumAttentionHeads > 0 && HiddenSize % NumAttentionHeads != 0)
            problems.Add($"hidden_size ({HiddenSize}) must be a multiple of num_attention_heads ({NumAttentionHeads})");
        if (!SupportedActivations.Contains(HiddenAct))
            problems.Add($"hidden_act '{HiddenAct}' is not supported (supported: {string.Join(", ", SupportedActivations)})");
        if (PositionEmbeddingType != "absolute")
            problems.Add($"position_embedding_type '{PositionEmbeddingType}' is not supported (only 'absolute')");
        if (ModelType is not null && !SupportedModelTypes.Contains(ModelType))
            problems.Add($"model_type '{ModelType}' is not a BERT checkpoint (supported: {string.Join(", ", SupportedModelTypes)})");
        if (LayerNormEps <= 0) problems.Add($"layer_norm_eps must be positive, got {LayerNormEps}");
        if (HiddenDropoutProb is < 0 or >= 1) problems.Add($"hidden_dropout_prob must be in [0, 1), got {HiddenDropoutProb}");
        if (AttentionProbsDropoutProb is < 0 or >= 1) problems.Add($"attention_probs_dropout_prob must be in [0, 1), got {AttentionProbsDropoutProb}");
        return problems;
    }
}

/// <summary>A config.json the encoder cannot read or honour.</summary>
public sealed class BertConfigException(string message) : Exception(message);
