using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Text;

namespace BertHost.Cli;

/// <summary>
/// <c>berthost init-model</c>: writes a randomly initialised BERT model folder of a standard size (or a given
/// config.json) with a given vocabulary — the starting point for pre-training from scratch, and a full-size stand-in
/// where no pre-trained weights can be had.
/// </summary>
public sealed class InitModelCommand : ICommand
{
    public string Name => "init-model";
    public string Summary => "Create a randomly initialised BERT model folder (Hugging Face layout)";
    public string Usage => "--vocab DIR --out DIR (--size tiny|mini|small|medium|base|large | --config FILE) [--seed N]";

    public string Details => """
        The vocabulary folder provides vocab.txt (and tokenizer_config.json / special_tokens_map.json when present),
        which are copied. Weights follow transformers' initialisation (normal, std initializer_range).
        example:
          berthost init-model --size mini --vocab ../shared/models/bert-base-uncased --out models/bert-mini-random
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("vocab", "folder with vocab.txt (tokenizer files are copied from it)", "DIR"),
        new("out", "folder to write (created; existing model files are replaced)", "DIR"),
        new("size", $"standard shape: {string.Join(", ", BertSizes.Names)}", "NAME"),
        new("config", "a config.json to use instead of --size (vocab_size is taken from the vocabulary)", "FILE"),
        new("seed", "random seed (default 42)", "N"),
    ];

    public Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var vocabFolder = args.Require("vocab");
        var output = args.Require("out");
        var size = args.Get("size");
        var configPath = args.Get("config");
        if ((size is null) == (configPath is null)) throw new UsageException("give exactly one of --size and --config");
        var seed = args.GetInt("seed", min: 0) ?? 42;

        int vocabSize;
        try
        {
            vocabSize = BertTextTokenizer.FromFolder(vocabFolder).VocabSize;
        }
        catch (Exception e) when (e is IOException or ArgumentException or InvalidDataException)
        {
            throw new CommandException($"--vocab: {e.Message}");
        }

        BertConfig config;
        try
        {
            config = size is not null
                ? BertSizes.Create(size, vocabSize)
                : BertConfig.Load(configPath!) with { VocabSize = vocabSize };
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--size: {e.Message}");
        }
        catch (BertConfigException e)
        {
            throw new CommandException(e.Message);
        }

        using var model = new BertModel(config);
        BertInitializer.Initialize(model, seed);
        ModelFolderWriter.Save(model, vocabFolder, output, new Dictionary<string, string> { ["berthost.init_seed"] = seed.ToString() });
        var parameters = model.parameters().Sum(p => p.numel());
        context.Out.WriteLine($"wrote {Path.GetFullPath(output)}: {config.NumHiddenLayers} layers, hidden {config.HiddenSize}, {config.NumAttentionHeads} heads, vocab {config.VocabSize}, {parameters:N0} parameters (random, seed {seed})");
        return Task.FromResult(CliApp.ExitOk);
    }
}
