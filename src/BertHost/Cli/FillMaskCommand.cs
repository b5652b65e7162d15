using TorchSharp;
using System.Text.Json.Nodes;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Pretraining;
using BertHost.Core.Text;
using BertHost.Core.Backends;

namespace BertHost.Cli;

/// <summary><c>berthost fill-mask</c>: the most likely tokens for each [MASK] (transformers' fill-mask pipeline).</summary>
public sealed class FillMaskCommand : ICommand
{
    public string Name => "fill-mask";
    public string Summary => "Predict the tokens behind [MASK] with a masked-LM model folder";
    public string Usage => "--model DIR [--top-k N] [--device DEVICE] [--input FILE] [TEXT ...]";

    public string Details => """
        The model folder must hold a masked-LM head (cls.predictions.*), as BertForMaskedLM / BertForPreTraining
        folders and `berthost pretrain --out` do. Output: one JSON line per text, in input order: a list of
        {"score", "token", "token_str", "sequence"} (top k, best first) for a text with one [MASK], a list of such
        lists for several masks (the pipeline's format).
        example:
          berthost fill-mask --model /tmp/pretrain-mini "The capital of France is [MASK]."
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("model", "Hugging Face model folder with cls.predictions.* weights", "DIR"),
        new("top-k", "candidates per mask (default 5)", "N"),
        new("device", "auto (default), cpu, cuda or cuda:N", "DEVICE"),
        new("input", "file with one text per line ('-' = stdin)", "FILE"),
    ];

    public async Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var folder = args.Require("model");
        var topK = args.GetInt("top-k", 1) ?? 5;
        var texts = new List<string>(args.Positionals);
        if (args.Get("input") is { } input)
        {
            var reader = input == "-" ? context.In : File.Exists(input) ? new StreamReader(input) : throw new CommandException($"--input: file '{input}' does not exist");
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
                if (line.Length > 0) texts.Add(line);
        }
        if (texts.Count == 0) throw new UsageException("give at least one TEXT containing [MASK] (or --input)");

        TorchSharp.torch.Device device;
        try
        {
            device = DeviceSelection.ResolveDevice(args.Get("device") ?? "auto");
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--device: {e.Message}");
        }
        BertForMaskedLM model;
        BertTextTokenizer tokenizer;
        try
        {
            tokenizer = BertTextTokenizer.FromFolder(folder);
            (model, var report) = MaskedLMCheckpoint.Load(folder);
            if (!report.HeadLoaded)
            {
                model.Dispose();
                throw new CommandException($"{folder} has no masked-LM head (cls.predictions.*): fill-mask needs a BertForMaskedLM or BertForPreTraining folder, such as `berthost pretrain --out` writes");
            }
        }
        catch (Exception e) when (e is CheckpointException or BertConfigException or IOException or InvalidDataException)
        {
            throw new CommandException($"--model: {e.Message}");
        }
        using (model)
        {
            model.to(device);
            var fill = new FillMask(model, tokenizer, device);
            var failed = false;
            for (var i = 0; i < texts.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                IReadOnlyList<IReadOnlyList<FillMaskCandidate>> masks;
                try
                {
                    masks = fill.Predict(texts[i], topK);
                }
                catch (ArgumentException e)
                {
                    context.Error.WriteLine($"berthost fill-mask: input {i + 1}: {e.Message}");
                    failed = true;
                    continue;
                }
                var lists = masks.Select(m => (JsonNode)new JsonArray(m.Select(c => (JsonNode)new JsonObject
                {
                    ["score"] = c.Score,
                    ["token"] = c.Token,
                    ["token_str"] = c.TokenStr,
                    ["sequence"] = c.Sequence,
                }).ToArray())).ToArray();
                JsonNode line = lists.Length == 1 ? lists[0] : new JsonArray(lists);
                context.Out.WriteLine(line.ToJsonString(JsonOutput.Serializer));
            }
            context.Out.Flush();
            return failed ? CliApp.ExitFailure : CliApp.ExitOk;
        }
    }
}
