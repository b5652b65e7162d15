using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Bert;

/// <summary>The stack of transformer blocks (HF <c>BertEncoder</c>: keys <c>encoder.layer.{i}.*</c>).</summary>
public sealed class BertEncoder : nn.Module<Tensor, Tensor, Tensor>
{
    public readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig config) : base(nameof(BertEncoder))
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new BertLayer(config)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor maskBias) => Run(hidden, maskBias, null);

    /// <summary>Runs every layer; when <paramref name="allHiddenStates"/> is given, each layer's output is appended to it
    /// (the caller owns them) and the last one is also returned.</summary>
    /// <param name="maskBias">Additive [B,1,1,T] mask, or null when no position is padded.</param>
    public Tensor Run(Tensor hidden, Tensor? maskBias, List<Tensor>? allHiddenStates)
    {
        var current = hidden;
        foreach (var block in layer)
        {
            var next = block.call(current, maskBias!);
            // Intermediate states are dropped as soon as the next layer has them, unless the caller keeps them all.
            if (allHiddenStates is null && !ReferenceEquals(current, hidden)) current.Dispose();
            allHiddenStates?.Add(next);
            current = next;
        }
        return ReferenceEquals(current, hidden) ? hidden.alias() : current;
    }

    /// <summary>
    /// The serving pass: every layer on the real tokens packed as <paramref name="packing"/> says (padding skipped in
    /// every Linear and LayerNorm; real tokens get the values of the padded computation). When
    /// <paramref name="allHiddenStates"/> is given it receives the embeddings and every layer's output as [B,T,H].
    /// </summary>
    /// <param name="embedded">[B,T,H] embeddings output.</param>
    /// <returns>The last layer's output, [B,T,H], zero at padded positions.</returns>
    internal Tensor RunPacked(Tensor embedded, TokenPacking packing, List<Tensor>? allHiddenStates)
    {
        var x = packing.Pack(embedded);
        allHiddenStates?.Add(embedded.alias());
        foreach (var block in layer)
        {
            var next = block.ForwardPacked(x, packing);
            x.Dispose();
            x = next;
            allHiddenStates?.Add(packing.Unpack(x));
        }
        using (x) return allHiddenStates is null ? packing.Unpack(x) : allHiddenStates[^1].alias();
    }
}
