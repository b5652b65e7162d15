using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// One task head on the shared body. The host owns the body, batching, devices and training loop; a head turns task
/// input into token sequences, body output into logits, and logits into task output.
/// <see cref="Encode"/> may run on several request threads at once (it should only read the head's settings and the
/// tokenizer); <see cref="Forward"/>, <see cref="Decode"/> and training calls are serialised by the host.
/// </summary>
public interface IHead : IDisposable
{
    string Name { get; }
    string Kind { get; }

    /// <summary>Output labels (classes, entity tags); empty for heads without labels (e.g. extractive QA).</summary>
    IReadOnlyList<string> Labels { get; }

    /// <summary>The head's parameters; the host moves it between train and eval mode and optimises it.</summary>
    nn.Module Module { get; }

    BodyRequirements Requirements { get; }

    /// <summary>The body fingerprint the weights were trained on; null for fresh or unknown weights.</summary>
    string? TrainedOnFingerprint { get; }

    /// <summary>
    /// The request parameters <see cref="Encode"/> reads (e.g. <c>top_k</c>); the host refuses others with a 400 naming
    /// them. Null (the default) = not declared: the host passes every parameter through unchecked.
    /// </summary>
    IReadOnlyCollection<string>? Parameters => null;

    /// <summary>Kind-specific facts for <c>GET /v1/heads/{name}</c> (options in force, pooling, max lengths...).</summary>
    JsonObject Describe();

    /// <summary>
    /// Validates and encodes one input of a request. <paramref name="parameters"/> holds the request's
    /// <c>parameters</c> object (an empty object when absent). Bad input throws <see cref="HeadInputException"/>
    /// naming the field.
    /// </summary>
    HeadFeatures Encode(JsonElement input, JsonElement parameters);

    /// <summary>Logits for every row of <paramref name="batch"/> from the body output of those rows.</summary>
    Tensor Forward(BodyOutput body, HeadBatch batch);

    /// <summary>One JSON result per item of <paramref name="batch"/>, in order, from the logits of <see cref="Forward"/>.</summary>
    IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch);

    /// <summary>Training support; null for inference-only heads.</summary>
    IHeadTraining? Training { get; }

    /// <summary>Writes the head's weights (safetensors) and manifest into <paramref name="folder"/>, atomically per file.</summary>
    void Save(string folder, HeadSaveInfo info);
}

/// <summary>What the host records with saved head weights.</summary>
/// <param name="BodyFingerprint">Fingerprint of the body the head was trained on.</param>
/// <param name="Metrics">Evaluation metrics of the saved weights, when known.</param>
public sealed record HeadSaveInfo(string BodyFingerprint, IReadOnlyDictionary<string, double>? Metrics = null);
