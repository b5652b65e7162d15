using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads;

/// <summary>What a head needs to know about the shared body it sits on.</summary>
public sealed record BodyInfo
{
    /// <summary>The Hugging Face model folder the body was loaded from.</summary>
    public required string ModelFolder { get; init; }

    public required int HiddenSize { get; init; }
    public required int NumHiddenLayers { get; init; }

    /// <summary>The longest sequence (special tokens included) the body accepts.</summary>
    public required int MaxSequenceLength { get; init; }

    /// <summary>Whether the body has pooler weights (the pooled output is available).</summary>
    public required bool HasPooler { get; init; }

    /// <summary>See the host's body fingerprint: heads record it when trained and are refused on another body.</summary>
    public required string Fingerprint { get; init; }

    /// <summary>The fingerprint without the pooler weights, for task models that have no pooler (HF token classification,
    /// question answering). Defaults to <see cref="Fingerprint"/> when not given.</summary>
    public string? EncoderFingerprint { get; init; }

    public required Device Device { get; init; }
    public required ScalarType DType { get; init; }

    /// <summary>The body config's dropout and initialiser range, the defaults for a head's own.</summary>
    public double HiddenDropoutProb { get; init; } = 0.1;
    public double InitializerRange { get; init; } = 0.02;
}
