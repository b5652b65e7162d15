namespace BertHost.Core.Bert;

/// <summary>Attention output projection with the post-attention residual LayerNorm (HF <c>BertSelfOutput</c>).</summary>
public sealed class BertSelfOutput(BertConfig config) : BertResidualOutput(nameof(BertSelfOutput), config, config.HiddenSize);
