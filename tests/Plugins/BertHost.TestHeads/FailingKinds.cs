using BertHost.Abstractions.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

namespace BertHost.TestHeads;

/// <summary>A kind whose constructor throws: discovery records it as broken, the other kinds of the assembly still load.</summary>
public sealed class ThrowsInConstructorKind : IHeadKind
{
    public ThrowsInConstructorKind() => throw new InvalidOperationException("this kind is broken on purpose (constructor)");
    public string Name => "throws-in-constructor";
    public string Description => "";
    public IHead Create(HeadContext context) => throw new NotSupportedException();
}

/// <summary>A kind whose Create throws: a plain bug (<c>options.mode: bug</c>, the default) or a configuration error (<c>options.mode: config</c>).</summary>
public sealed class ThrowsInCreateKind : IHeadKind
{
    public string Name => "throws-in-create";
    public string Description => "Fails to create its head (test)";

    public IHead Create(HeadContext context)
    {
        var mode = context.Options.ValueKind == JsonValueKind.Object && context.Options.TryGetProperty("mode", out var m) ? m.GetString() : "bug";
        if (mode == "config") throw new HeadConfigurationException("options.mode", "throws-in-create refuses mode 'config' on purpose");
        throw new NullReferenceException("a bug inside the plugin's Create");
    }
}

/// <summary>A kind whose heads throw in Forward.</summary>
public sealed class ThrowsInForwardKind : IHeadKind
{
    public string Name => "throws-in-forward";
    public string Description => "Throws in Forward (test)";
    public IHead Create(HeadContext context) => new ThrowsInForwardHead(context.Name, context.Tokenizer);
}

/// <summary>
/// Encodes like a real head (so its inputs reach the body pass), then fails in Forward; the text "throw in encode"
/// makes Encode itself fail with a bug (not a <see cref="HeadInputException"/>).
/// </summary>
public sealed class ThrowsInForwardHead(string name, ITextTokenizer tokenizer) : IHead
{
    private readonly nn.Module _module = nn.Identity();
    public string Name => name;
    public string Kind => "throws-in-forward";
    public IReadOnlyList<string> Labels => [];
    public nn.Module Module => _module;
    public BodyRequirements Requirements => BodyRequirements.LastHiddenState;
    public string? TrainedOnFingerprint => null;
    public IHeadTraining? Training => null;
    public JsonObject Describe() => new();
    public HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        var text = input.ValueKind == JsonValueKind.String ? input.GetString()
            : input.ValueKind == JsonValueKind.Object && input.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()
            : throw new HeadInputException("text", "text must be a string");
        if (text == "throw in encode") ThrowFromEncode();
        return new HeadFeatures { Sequences = tokenizer.Encode(text!) };
    }
    // A method of its own, so the stack trace the host logs names it.
    private static void ThrowFromEncode() => throw new InvalidOperationException("throws-in-forward failed in Encode on purpose");
    public Tensor Forward(BodyOutput body, HeadBatch batch) => throw new InvalidOperationException("throws-in-forward failed in Forward on purpose");
    public IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch) => throw new NotSupportedException();
    public void Save(string folder, HeadSaveInfo info) => throw new NotSupportedException();
    public void Dispose() => _module.Dispose();
}

/// <summary>Not discovered: abstract.</summary>
public abstract class AbstractKind : IHeadKind
{
    public string Name => "abstract";
    public string Description => "";
    public abstract IHead Create(HeadContext context);
}

/// <summary>Not discovered: no parameterless constructor (reported as broken).</summary>
public sealed class NeedsArgumentKind(string name) : IHeadKind
{
    public string Name => name;
    public string Description => "";
    public IHead Create(HeadContext context) => throw new NotSupportedException();
}
