using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using BertHost.Core.Bert;

namespace BertHost.Core.Checkpoints.Onnx;

/// <param name="Input">An .onnx file, or a .dll / .nupkg carrying <c>*.model.onnx</c> and <c>*.vocab.txt</c> resources.</param>
/// <param name="Output">The model folder to write (replaced as a whole).</param>
/// <param name="Vocab">A vocab.txt to use instead of the input's own (required for a bare .onnx file).</param>
/// <param name="LowerCase">do_lower_case for tokenizer_config.json; null infers it from the vocabulary.</param>
public sealed record OnnxImportOptions(string Input, string Output, string? Vocab = null, bool? LowerCase = null);

/// <summary>What an import wrote.</summary>
public sealed record OnnxImportResult(string Source, string Producer, string Output, BertConfig Config, bool HasPooler, bool LowerCase, long Parameters);

/// <summary>
/// Turns a BERT ONNX export (torch.onnx of Hugging Face <c>BertModel</c>) into a Hugging Face model folder:
/// config.json derived from the graph, vocab.txt with LF line ends, tokenizer_config.json and model.safetensors with
/// plain <c>BertModel</c> keys. The weights are loaded into a <see cref="BertModel"/> of the derived config before
/// anything is written, so a folder that appears is one the host loads.
/// </summary>
public static class OnnxBertImporter
{
    /// <summary>The files an import writes: an existing output folder holding anything else is not replaced.</summary>
    public static IReadOnlyList<string> WrittenFiles { get; } = ["config.json", "vocab.txt", "tokenizer_config.json", "model.safetensors"];

    /// <summary>A vocabulary is taken as cased when at least this share of its tokens change under lower-casing.</summary>
    private const double CasedShare = 0.01;

    public static OnnxImportResult Import(OnnxImportOptions options)
    {
        var output = Path.GetFullPath(options.Output);
        EnsureReplaceable(output);

        var input = OnnxImportInput.Read(options.Input);
        var vocabBytes = options.Vocab is { } vocabPath
            ? File.Exists(vocabPath) ? File.ReadAllBytes(vocabPath) : throw new OnnxImportException($"{vocabPath}: file not found")
            : input.Vocab ?? throw new OnnxImportException($"{input.Description}: carries no vocabulary; give one with --vocab");
        var vocab = NormalisedVocab(vocabBytes, options.Vocab ?? input.Description);

        var graph = OnnxGraph.Parse(input.Description, input.Model);
        var map = OnnxBertWeightMap.Find(graph);
        var config = OnnxBertConfigReader.Infer(graph, map);
        if (vocab.Tokens.Length > config.VocabSize)
            throw new OnnxImportException($"{input.Description}: the vocabulary has {vocab.Tokens.Length} tokens but the word embeddings only {config.VocabSize} rows");
        var lowerCase = options.LowerCase ?? !LooksCased(vocab.Tokens);

        using var model = new BertModel(config, addPoolingLayer: map.HasPooler);
        using (var source = new OnnxBertTensorSource(graph, map)) BertCheckpointLoader.Load(model, source);
        var metadata = new Dictionary<string, string>
        {
            ["berthost.imported_from"] = input.Description,
            ["berthost.onnx_producer"] = graph.ProducedBy,
            ["berthost.onnx_sha256"] = Convert.ToHexStringLower(SHA256.HashData(input.Model)),
        };
        var tokenizerConfig = new Dictionary<string, object>
        {
            ["do_lower_case"] = lowerCase,
            ["model_max_length"] = config.MaxPositionEmbeddings,
            ["tokenizer_class"] = "BertTokenizer",
        };

        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        AtomicFolder.Replace(output, folder =>
        {
            Directory.CreateDirectory(folder);
            File.WriteAllText(Path.Combine(folder, "vocab.txt"), vocab.Text, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
            File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), JsonSerializer.Serialize(tokenizerConfig, new JsonSerializerOptions { WriteIndented = true }));
            ModelFolderWriter.Save(model, folder, folder, metadata);
        });
        return new OnnxImportResult(input.Description, graph.ProducedBy, output, config, map.HasPooler, lowerCase,
            model.parameters().Sum(p => p.numel()));
    }

    /// <summary>
    /// The folder is replaced whole, so it must be new, empty, or hold only what an earlier import wrote: a mistyped
    /// --out never deletes anything else.
    /// </summary>
    private static void EnsureReplaceable(string output)
    {
        if (File.Exists(output)) throw new OnnxImportException($"{output}: exists and is a file; the output is a model folder");
        if (!Directory.Exists(output)) return;
        var other = Directory.EnumerateFileSystemEntries(output).Select(Path.GetFileName).FirstOrDefault(n => !WrittenFiles.Contains(n));
        if (other is not null)
            throw new OnnxImportException($"{output}: exists and holds '{other}', which an import does not write; give a new or empty folder (the output folder is replaced as a whole)");
    }

    private sealed record Vocabulary(string Text, string[] Tokens);

    /// <summary>UTF-8 without BOM, LF line ends (some packages ship CRLF), a final newline.</summary>
    private static Vocabulary NormalisedVocab(byte[] bytes, string description)
    {
        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new OnnxImportException($"{description}: the vocabulary is not UTF-8 text");
        }
        text = text.TrimStart('\uFEFF').Replace("\r\n", "\n");
        if (text.Length > 0 && !text.EndsWith('\n')) text += "\n";
        var tokens = text.Split('\n')[..^1];
        if (tokens.Length == 0) throw new OnnxImportException($"{description}: the vocabulary is empty");
        return new Vocabulary(text, tokens);
    }

    /// <summary>
    /// A cased vocabulary (bert-base-cased) has thousands of capitalised tokens; an uncased one next to none (a stray
    /// capital in a symbol or foreign word would not make it cased), so a 1% share tells them apart.
    /// </summary>
    private static bool LooksCased(string[] tokens)
    {
        var words = tokens.Where(t => !(t.StartsWith('[') && t.EndsWith(']'))).ToList();
        var changed = words.Count(t => t.ToLowerInvariant() != t);
        return changed >= CasedShare * words.Count;
    }
}
