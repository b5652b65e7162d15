using System.Text.Json.Nodes;
using BertHost.Core.Lora;

namespace BertHost.Cli;

/// <summary><c>berthost adapters export|import</c>: a LoRA head folder's adapter to and from a Hugging Face PEFT folder.</summary>
public sealed class AdaptersCommand : ICommand
{
    public string Name => "adapters";
    public string Summary => "Export a LoRA head's adapter as a Hugging Face PEFT folder, or import one into a head folder";
    public string Usage => "export HEAD_FOLDER OUT_FOLDER [--base-model NAME]\n       berthost adapters import PEFT_FOLDER HEAD_FOLDER";

    public string Details => """
        export writes OUT_FOLDER/adapter_config.json (peft_type LORA, r, lora_alpha, lora_dropout, target_modules,
        bias none) and OUT_FOLDER/adapter_model.safetensors with PEFT's keys for a BertModel base
        (base_model.model.encoder.layer.N.attention.self.query.lora_A.weight, lora_B.weight); load it in Python with
        PeftModel.from_pretrained(AutoModel.from_pretrained(BASE), OUT_FOLDER). The head itself (classifier etc.) stays in
        the head folder.
        import puts a PEFT LoRA adapter (keys base_model.model.[bert.]encoder.layer...) into an existing head folder
        (one saved by `berthost train`), replacing its adapter: the host then serves the head with it. Tensors that are
        not LoRA weights of the encoder (a classifier in modules_to_save) are listed and left out. DoRA, rsLoRA,
        per-module ranks/alphas and biases are refused.
        Prints one JSON line: {"action", "modules", "r", "lora_alpha", "target_modules", "ignored"?}.
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("base-model", "export: base_model_name_or_path to record in adapter_config.json", "NAME"),
    ];

    public Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        if (args.Positionals.Count != 3) throw new UsageException("give export HEAD_FOLDER OUT_FOLDER or import PEFT_FOLDER HEAD_FOLDER");
        var (action, from, to) = (args.Positionals[0], args.Positionals[1], args.Positionals[2]);
        if (!Directory.Exists(from)) throw new CommandException($"{from} does not exist");
        try
        {
            JsonObject line;
            switch (action)
            {
                case "export":
                {
                    var count = PeftAdapter.Export(from, to, args.Get("base-model"));
                    var settings = LoraHeadFolder.ReadSettings(from)!;
                    line = Line("export", count / 2, settings);
                    break;
                }
                case "import":
                {
                    if (!Directory.Exists(to)) throw new CommandException($"{to} does not exist (import into a saved head folder)");
                    var modules = PeftAdapter.Import(from, to, out var ignored);
                    line = Line("import", modules, LoraHeadFolder.ReadSettings(to)!);
                    if (ignored.Count > 0) line["ignored"] = new JsonArray(ignored.Select(i => (JsonNode)i).ToArray());
                    break;
                }
                default:
                    throw new UsageException($"unknown action '{action}' (export or import)");
            }
            context.Out.WriteLine(line.ToJsonString(JsonOutput.Serializer));
            return Task.FromResult(CliApp.ExitOk);
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or IOException or Core.Checkpoints.CheckpointException)
        {
            throw new CommandException(e.Message);
        }
    }

    private static JsonObject Line(string action, int modules, LoraSettings settings) => new()
    {
        ["action"] = action,
        ["modules"] = modules,
        ["r"] = settings.Rank,
        ["lora_alpha"] = settings.Alpha,
        ["target_modules"] = new JsonArray(settings.TargetModules.Select(t => (JsonNode)t).ToArray()),
    };
}
