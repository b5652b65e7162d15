using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using static TorchSharp.torch;

namespace BertHost.TestHeads;

/// <summary>
/// The smallest useful third-party head: <c>kind: echo-cls</c> returns the token count and the first values of the
/// [CLS] vector of the last layer. It has no parameters and no training.
/// </summary>
public sealed class EchoClsKind : IHeadKind
{
    public string Name => "echo-cls";
    public string Description => "Token count and the first values of the [CLS] hidden state (a minimal example head)";

    public IHead Create(HeadContext context)
    {
        var dims = 4;
        if (context.Options.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in context.Options.EnumerateObject())
            {
                if (p.Name != "dims") throw new HeadConfigurationException($"options.{p.Name}", $"unknown option '{p.Name}' (echo-cls knows: dims)");
                if (!p.Value.TryGetInt32(out dims) || dims < 1 || dims > context.Body.HiddenSize)
                    throw new HeadConfigurationException("options.dims", $"dims must be an integer in 1..{context.Body.HiddenSize}");
            }
        }
        return new EchoClsHead(context, dims);
    }
}

public sealed class EchoClsHead(HeadContext context, int dims) : IHead
{
    private sealed class NoParameters() : nn.Module("echo-cls");

    private readonly NoParameters _module = new();

    public string Name => context.Name;
    public string Kind => "echo-cls";
    public IReadOnlyList<string> Labels => [];
    public nn.Module Module => _module;
    public BodyRequirements Requirements => BodyRequirements.LastHiddenState;
    public string? TrainedOnFingerprint => null;
    public IHeadTraining? Training => null;

    public JsonObject Describe() => new() { ["dims"] = dims };

    public HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        var text = input.ValueKind switch
        {
            JsonValueKind.String => input.GetString()!,
            JsonValueKind.Object when input.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String => t.GetString()!,
            _ => throw new HeadInputException("text", "send a string or {\"text\": \"...\"}"),
        };
        var options = new EncodeOptions { MaxLength = context.Body.MaxSequenceLength };
        return new HeadFeatures { Sequences = [context.Tokenizer.Encode(text, null, options)[0]] };
    }

    public Tensor Forward(BodyOutput body, HeadBatch batch) => body.LastHiddenState.select(1, 0).narrow(1, 0, dims).clone();

    public IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch)
    {
        using var cpu = logits.to(ScalarType.Float32, CPU).contiguous();
        var values = cpu.data<float>().ToArray();
        return batch.Items.Select((item, i) => (JsonNode)new JsonObject
        {
            ["tokens"] = item.TokenCount,
            ["cls"] = new JsonArray(values.Skip(batch.RowStarts[i] * dims).Take(dims).Select(v => (JsonNode)v).ToArray()),
        }).ToList();
    }

    public void Save(string folder, HeadSaveInfo info)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "head.json"), new JsonObject { ["kind"] = Kind, ["dims"] = dims, ["body_fingerprint"] = info.BodyFingerprint }.ToJsonString());
    }

    public void Dispose() => _module.Dispose();
}
