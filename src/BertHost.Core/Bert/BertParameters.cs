namespace BertHost.Core.Bert;

/// <summary>
/// The parameters a <see cref="BertModel"/> of a config has, by Hugging Face name, with their shapes: what a checkpoint
/// must hold. Lets a checkpoint be checked and fingerprinted without building a model (a test keeps this list equal
/// to the model's own <c>named_parameters()</c>).
/// </summary>
public static class BertParameters
{
    public static IReadOnlyList<(string Name, long[] Shape)> Of(BertConfig c, bool withPooler)
    {
        long h = c.HiddenSize, i = c.IntermediateSize;
        var list = new List<(string, long[])>
        {
            ("embeddings.word_embeddings.weight", [c.VocabSize, h]),
            ("embeddings.position_embeddings.weight", [c.MaxPositionEmbeddings, h]),
            ("embeddings.token_type_embeddings.weight", [c.TypeVocabSize, h]),
        };
        AddLayerNorm(list, "embeddings.LayerNorm", h);
        for (var l = 0; l < c.NumHiddenLayers; l++)
        {
            var layer = $"encoder.layer.{l}.";
            foreach (var projection in new[] { "query", "key", "value" }) AddLinear(list, layer + "attention.self." + projection, h, h);
            AddLinear(list, layer + "attention.output.dense", h, h);
            AddLayerNorm(list, layer + "attention.output.LayerNorm", h);
            AddLinear(list, layer + "intermediate.dense", h, i);
            AddLinear(list, layer + "output.dense", i, h);
            AddLayerNorm(list, layer + "output.LayerNorm", h);
        }
        if (withPooler) AddLinear(list, "pooler.dense", h, h);
        return list;
    }

    private static void AddLinear(List<(string, long[])> list, string prefix, long inFeatures, long outFeatures)
    {
        list.Add((prefix + ".weight", [outFeatures, inFeatures]));
        list.Add((prefix + ".bias", [outFeatures]));
    }

    private static void AddLayerNorm(List<(string, long[])> list, string prefix, long size)
    {
        list.Add((prefix + ".weight", [size]));
        list.Add((prefix + ".bias", [size]));
    }
}
