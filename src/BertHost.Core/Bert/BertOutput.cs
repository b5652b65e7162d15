namespace BertHost.Core.Bert;

/// <summary>Feed-forward contraction with the residual LayerNorm (HF <c>BertOutput</c>).</summary>
public sealed class BertOutput(BertConfig config) : BertResidualOutput(nameof(BertOutput), config, config.IntermediateSize);
