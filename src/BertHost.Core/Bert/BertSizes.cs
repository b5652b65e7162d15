namespace BertHost.Core.Bert;

/// <summary>The standard BERT shapes (Google's compact BERTs and BERT-base/large), for models created from scratch.</summary>
public static class BertSizes
{
    private static readonly Dictionary<string, (int Layers, int Hidden, int Heads)> Shapes = new(StringComparer.OrdinalIgnoreCase)
    {
        ["tiny"] = (2, 128, 2),
        ["mini"] = (4, 256, 4),
        ["small"] = (4, 512, 8),
        ["medium"] = (8, 512, 8),
        ["base"] = (12, 768, 12),
        ["large"] = (24, 1024, 16),
    };

    public static IReadOnlyCollection<string> Names => Shapes.Keys;

    /// <summary>A config of the named size (feed-forward 4 × hidden) for a vocabulary of <paramref name="vocabSize"/> tokens.</summary>
    public static BertConfig Create(string name, int vocabSize)
    {
        if (!Shapes.TryGetValue(name, out var s))
            throw new ArgumentException($"size '{name}' is not one of {string.Join(", ", Shapes.Keys)}");
        return new BertConfig
        {
            VocabSize = vocabSize,
            NumHiddenLayers = s.Layers,
            HiddenSize = s.Hidden,
            NumAttentionHeads = s.Heads,
            IntermediateSize = 4 * s.Hidden,
            Architectures = ["BertModel"],
        };
    }
}
