using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using BertHost.Core.Serving;
using static TorchSharp.torch;

namespace BertHost.Tests.Serving;

/// <summary>
/// A head for serving tests: input {"text"}, output the first token's last hidden state (or its mean over tokens),
/// so results can be compared with a direct body pass. Optionally throws in Forward.
/// </summary>
internal sealed class VectorHead(string name, ITextTokenizer tokenizer, bool mean = false, bool failInForward = false) : IHead
{
    private readonly nn.Module _module = nn.Identity();

    public string Name => name;
    public string Kind => "test-vector";
    public IReadOnlyList<string> Labels => [];
    public nn.Module Module => _module;
    public BodyRequirements Requirements => BodyRequirements.LastHiddenState;
    public string? TrainedOnFingerprint => null;
    public IHeadTraining? Training => null;
    public int ForwardCalls { get; private set; }

    public JsonObject Describe() => new() { ["mean"] = mean };

    public HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        if (input.ValueKind != JsonValueKind.Object || !input.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
            throw new HeadInputException("text", "text must be a string");
        return new HeadFeatures { Sequences = tokenizer.Encode(text.GetString()!, null, new EncodeOptions { MaxLength = 64 }) };
    }

    public Tensor Forward(BodyOutput body, HeadBatch batch)
    {
        ForwardCalls++;
        if (failInForward) throw new InvalidOperationException("boom");
        if (!mean) return body.LastHiddenState.select(1, 0).clone();
        var mask = body.AttentionMask.to(body.LastHiddenState.dtype).unsqueeze(-1);
        return body.LastHiddenState.mul(mask).sum(1).div(mask.sum(1));
    }

    public IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch)
    {
        var rows = logits.to(ScalarType.Float32).cpu();
        return Enumerable.Range(0, batch.Items.Count)
            .Select(i => (JsonNode)new JsonArray(rows[batch.RowStarts[i]].data<float>().ToArray().Select(v => (JsonNode)v).ToArray()))
            .ToList();
    }

    public void Save(string folder, HeadSaveInfo info) => throw new NotSupportedException();

    public void Dispose() => _module.Dispose();

    public static HeadSlot Slot(IHead head) => new(head.Name, head.Kind, head, HeadStates.Ready, null, null, null);
}
