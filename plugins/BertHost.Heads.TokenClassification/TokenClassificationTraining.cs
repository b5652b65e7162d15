using System.Text.Json;
using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

namespace BertHost.Heads.TokenClassification;

/// <summary>
/// Training support of a token-classification head: readers for <c>conll</c> (one token per line, whitespace-separated
/// columns, the first is the word and the last the tag; a blank line ends a sentence; <c>-DOCSTART-</c> lines are skipped)
/// and <c>jsonl</c> (<c>{"tokens": [...], "tags": [...]}</c>, tags as names or label indices; <c>ner_tags</c> is read as
/// <c>tags</c>; other fields are ignored). Tags are converted to the head's scheme (IOB1 data for a bio head and the
/// reverse; a no-op for data already in it). Each word's tag goes on its first sub-token, -100 (no loss) on the other
/// sub-tokens and the special tokens; a sentence longer than a window is split into windows like inference, and each
/// word is labelled in exactly one window. Loss: token-level cross-entropy over the labelled positions.
/// </summary>
public sealed class TokenClassificationTraining : IHeadTraining
{
    public const string Conll = "conll";
    public const string Jsonl = TrainingRecords.Jsonl;
    public const int Ignored = -100;

    private readonly TokenClassificationHead _head;

    internal TokenClassificationTraining(TokenClassificationHead head) => _head = head;

    private double[]? _balanced;

    /// <summary>The loss weights in force: the configured ones, or those derived by <see cref="PrepareTraining"/> for "balanced".</summary>
    internal IReadOnlyList<double>? ClassWeights => _head.Options.ClassWeights is { Balanced: true } ? _balanced : _head.Options.ClassWeights?.Weights;

    public void PrepareTraining(IReadOnlyList<HeadFeatures> train)
    {
        if (_head.Options.ClassWeights is not { Balanced: true }) return;
        var counts = new long[Labels.Count];
        foreach (var item in train)
            if (item.State is TokenClassificationState { TokenLabels: { } windows })
                foreach (var window in windows)
                foreach (var t in window)
                    if (t != Ignored) counts[t]++;
        _balanced = ClassWeightsOption.BalancedWeights(counts);
    }

    public IReadOnlyList<string> DataFormats { get; } = [Conll, Jsonl];

    private IReadOnlyList<string> Labels => _head.Labels;

    public IEnumerable<HeadFeatures> ReadExamples(string path, TrainingDataOptions options)
    {
        TrainingRecords.Check(path, options);
        var format = options.Format ?? DetectFormat(path);
        var records = format switch
        {
            Conll => ReadConll(path),
            Jsonl => ReadJsonl(path),
            _ => throw TrainingRecords.UnknownFormat(format, DataFormats),
        };
        return Examples(path, records, options);
    }

    /// <summary>By extension (.jsonl/.json/.ndjson = jsonl), else by the first non-blank character ('{' = jsonl, else conll).</summary>
    public static string DetectFormat(string path) => TrainingRecords.DetectJsonlOr(path, Conll);

    /// <summary>A sentence as read: its words, their tags (names), the line of each word, or the error that makes it malformed.</summary>
    private sealed record Sentence(int Line, List<string> Words, List<string> Tags, List<int> Lines, TrainingDataException? Error = null);

    private IEnumerable<HeadFeatures> Examples(string path, IEnumerable<Sentence> sentences, TrainingDataOptions options) =>
        TrainingRecords.Each(sentences, s => s.Error is not null ? throw s.Error : Example(path, s), options);

    private static IEnumerable<Sentence> ReadConll(string path)
    {
        using var reader = TrainingRecords.Open(path);
        var words = new List<string>();
        var tags = new List<string>();
        var lines = new List<int>();
        TrainingDataException? error = null;
        var lineNo = 0;
        string? line;
        while (true)
        {
            line = reader.ReadLine();
            if (line is not null) lineNo++;
            var cells = line?.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) ?? [];
            if (cells.Length == 0 || cells[0] == "-DOCSTART-")
            {
                if (words.Count > 0 || error is not null) yield return new Sentence(lines.Count > 0 ? lines[0] : lineNo, words, tags, lines, error);
                words = [];
                tags = [];
                lines = [];
                error = null;
                if (line is null) yield break;
                continue;
            }
            if (cells.Length < 2)
                error ??= new TrainingDataException(path, lineNo, $"'{line!.Trim()}' has one column; a conll line is 'word ... tag' (the last column is the tag)");
            words.Add(cells[0]);
            tags.Add(cells[^1]);
            lines.Add(lineNo);
        }
    }

    private IEnumerable<Sentence> ReadJsonl(string path)
    {
        foreach (var (lineNo, line) in TrainingRecords.NonBlankLines(path))
        {
            Sentence sentence;
            try
            {
                sentence = JsonlSentence(path, lineNo, line);
            }
            catch (TrainingDataException e)
            {
                sentence = new Sentence(lineNo, [], [], [], e);
            }
            yield return sentence;
        }
    }

    private Sentence JsonlSentence(string path, int lineNo, string line) =>
        TrainingRecords.ReadObjectLine(path, lineNo, line, "{\"tokens\": [...], \"tags\": [...]}", o => JsonlSentence(path, lineNo, o));

    private Sentence JsonlSentence(string path, int lineNo, JsonElement o)
    {
        if (!o.TryGetProperty("tokens", out var tokens) || tokens.ValueKind != JsonValueKind.Array)
            throw new TrainingDataException(path, lineNo, "tokens must be a list of words");
        if (!(o.TryGetProperty("tags", out var tags) || o.TryGetProperty("ner_tags", out tags)) || tags.ValueKind != JsonValueKind.Array)
            throw new TrainingDataException(path, lineNo, "tags must be a list of tags (one per token)");
        var words = tokens.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String && e.GetString()!.Length > 0
            ? e.GetString()! : throw new TrainingDataException(path, lineNo, "every token must be a non-empty string")).ToList();
        var names = tags.EnumerateArray().Select(e => e.ValueKind switch
        {
            JsonValueKind.String => e.GetString()!,
            JsonValueKind.Number when e.TryGetInt32(out var i) && i >= 0 && i < Labels.Count => Labels[i],
            _ => throw new TrainingDataException(path, lineNo, $"tag {e.GetRawText()} is neither a label name nor an index of the {Labels.Count} labels"),
        }).ToList();
        if (names.Count != words.Count) throw new TrainingDataException(path, lineNo, $"{words.Count} tokens but {names.Count} tags");
        if (words.Count == 0) throw new TrainingDataException(path, lineNo, "tokens is empty");
        return new Sentence(lineNo, words, names, Enumerable.Repeat(lineNo, words.Count).ToList());
    }

    private HeadFeatures Example(string path, Sentence s)
    {
        for (var k = 0; k < s.Tags.Count; k++)
            if (!Labels.Contains(s.Tags[k]))
                throw new TrainingDataException(path, s.Lines[k], $"tag '{s.Tags[k]}' is not one of the head's labels ({string.Join(", ", Labels)})");
        var converted = _head.Options.Scheme == TagScheme.Bio ? Seqeval.ToIob2(s.Tags) : Seqeval.ToIob1(s.Tags);
        var ids = new int[converted.Length];
        for (var k = 0; k < converted.Length; k++)
        {
            ids[k] = IndexOf(converted[k]);
            if (ids[k] < 0)
                throw new TrainingDataException(path, s.Lines[k],
                    $"tag '{s.Tags[k]}' is '{converted[k]}' in the head's {TokenClassificationOptions.Name(_head.Options.Scheme)} scheme, which is not one of its labels ({string.Join(", ", Labels)})");
        }

        var (windows, state) = _head.EncodeWords(s.Words);
        var tokenLabels = windows.Select(w => Enumerable.Repeat(Ignored, w.Length).ToArray()).ToArray();
        var seen = new bool[s.Words.Count];
        foreach (var (w, p) in state.Windows.Owners)
        {
            // the owner of a word's first sub-token carries the word's tag
            if (windows[w].WordIds[p] is not { } word || seen[word]) continue;
            seen[word] = true;
            tokenLabels[w][p] = ids[word];
        }
        return new HeadFeatures
        {
            Sequences = windows,
            State = new TokenClassificationState
            {
                Text = state.Text, WordStarts = state.WordStarts, Windows = state.Windows,
                TokenLabels = tokenLabels, WordTags = ids, Source = $"{path}:{s.Line}",
            },
        };
    }

    private int IndexOf(string label)
    {
        for (var i = 0; i < Labels.Count; i++) if (string.Equals(Labels[i], label, StringComparison.Ordinal)) return i;
        return -1;
    }

    public Tensor Loss(Tensor logits, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        int rows = (int)logits.shape[0], length = (int)logits.shape[1], n = (int)logits.shape[2];
        if (rows != batch.RowCount) throw new ArgumentException($"logits have {rows} rows, the batch has {batch.RowCount}");
        var targets = Enumerable.Repeat((long)Ignored, rows * length).ToArray();
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var state = batch.Items[i].State as TokenClassificationState;
            var labels = state?.TokenLabels ?? throw new ArgumentException($"batch item {i} has no training tags");
            for (var w = 0; w < labels.Length; w++)
            {
                var row = batch.RowStarts[i] + w;
                for (var p = 0; p < labels[w].Length; p++) targets[row * length + p] = labels[w][p];
            }
        }
        // A weighted mean, as torch's cross_entropy(weight=...) takes it: the sum of w[y]·loss over the sum of w[y].
        var classWeights = ClassWeights;
        var labelled = targets.Where(t => t != Ignored).Sum(t => classWeights is null ? 1.0 : classWeights[(int)t]);
        var target = tensor(targets, ScalarType.Int64, batch.Device);
        var weight = classWeights is null ? null : tensor(classWeights.Select(v => (float)v).ToArray(), ScalarType.Float32, batch.Device);
        var sum = nn.functional.cross_entropy(logits.to(ScalarType.Float32).reshape(-1, n), target, weight: weight, ignore_index: Ignored, reduction: nn.Reduction.Sum);
        return sum.div(labelled > 0 ? labelled : 1.0).MoveToOuterDisposeScope();
    }

    public IHeadMetric CreateMetric() => new EntityMetric(Labels);
}
