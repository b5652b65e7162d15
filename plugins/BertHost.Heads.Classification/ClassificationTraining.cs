using System.Globalization;
using System.Text.Json;
using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

namespace BertHost.Heads.Classification;

/// <summary>
/// Training support of a text-classification head: readers for <c>glue-tsv</c> (SST-2 <c>sentence\tlabel</c>, MRPC
/// <c>Quality\t#1 ID\t#2 ID\t#1 String\t#2 String</c>, or any header with sentence/sentence1/sentence2/text/label
/// columns; no quoting; a UTF-8 BOM is skipped) and <c>jsonl</c> (<c>{"text", "text_pair"?, "label"}</c>), the loss
/// (cross-entropy with optional class weights, or BCE-with-logits for multi_label) and the metric.
/// </summary>
public sealed class ClassificationTraining : IHeadTraining
{
    public const string GlueTsv = "glue-tsv";
    public const string Jsonl = TrainingRecords.Jsonl;

    private static readonly string[] TextColumns = ["sentence", "sentence1", "#1 String", "text", "question"];
    private static readonly string[] PairColumns = ["sentence2", "#2 String", "text_pair"];
    private static readonly string[] LabelColumns = ["label", "Quality"];

    private readonly ClassificationHead _head;

    internal ClassificationTraining(ClassificationHead head) => _head = head;

    /// <summary>The loss weights in force: the configured ones, or those derived by <see cref="PrepareTraining"/> for "balanced".</summary>
    internal IReadOnlyList<double>? ClassWeights => _head.Options.ClassWeights is { Balanced: true } ? _balanced : _head.Options.ClassWeights?.Weights;

    private double[]? _balanced;

    public void PrepareTraining(IReadOnlyList<HeadFeatures> train)
    {
        if (_head.Options.ClassWeights is not { Balanced: true }) return;
        var counts = new long[Labels.Count];
        foreach (var item in train)
            if (item.State is ClassificationState { Label: { } label }) counts[label]++;
        _balanced = ClassWeightsOption.BalancedWeights(counts);
    }

    public IReadOnlyList<string> DataFormats { get; } = [GlueTsv, Jsonl];

    private IReadOnlyList<string> Labels => _head.Labels;
    private bool MultiLabel => _head.Options.ProblemType == ProblemType.MultiLabel;

    public IEnumerable<HeadFeatures> ReadExamples(string path, TrainingDataOptions options)
    {
        TrainingRecords.Check(path, options);
        var format = options.Format ?? DetectFormat(path);
        return format switch
        {
            GlueTsv => ReadTsv(path, options),
            Jsonl => ReadJsonl(path, options),
            _ => throw TrainingRecords.UnknownFormat(format, DataFormats),
        };
    }

    /// <summary>By extension (.tsv, .jsonl/.json), else by the first non-blank character ('{' = jsonl).</summary>
    public static string DetectFormat(string path) => TrainingRecords.DetectJsonlOr(path, GlueTsv, ".tsv");

    private IEnumerable<HeadFeatures> ReadTsv(string path, TrainingDataOptions options)
    {
        using var reader = TrainingRecords.Open(path);
        var header = reader.ReadLine() ?? throw new TrainingDataException(path, 1, "the file is empty (a glue-tsv file starts with a header line)");
        var columns = header.TrimStart('\uFEFF').Split('\t').Select(c => c.Trim()).ToArray();
        int Find(string[] names) => Array.FindIndex(columns, c => names.Contains(c, StringComparer.OrdinalIgnoreCase));
        var textCol = Find(TextColumns);
        var pairCol = Find(PairColumns);
        var labelCol = Find(LabelColumns);
        if (textCol < 0 || labelCol < 0)
            throw new TrainingDataException(path, 1,
                $"header [{string.Join(", ", columns)}] has no {(textCol < 0 ? "text" : "label")} column (expected a text column named one of {string.Join(", ", TextColumns)}, " +
                $"optionally a pair column {string.Join(", ", PairColumns)}, and a label column {string.Join(", ", LabelColumns)}, as SST-2's 'sentence\\tlabel' or MRPC's header)");

        foreach (var example in TrainingRecords.Each(Rows(), TsvExample, options))
            yield return example;

        IEnumerable<(int LineNo, string Line)> Rows()
        {
            var lineNo = 1;
            string? line;
            while ((line = reader.ReadLine()) is not null)
            {
                lineNo++;
                if (line.Length != 0) yield return (lineNo, line);
            }
        }

        HeadFeatures TsvExample((int LineNo, string Line) row)
        {
            var (lineNo, line) = row;
            var cells = line.Split('\t');
            if (cells.Length != columns.Length)
                throw new TrainingDataException(path, lineNo, $"{cells.Length} tab-separated columns, the header has {columns.Length}");
            var text = cells[textCol];
            var pair = pairCol >= 0 ? cells[pairCol] : null;
            if (string.IsNullOrWhiteSpace(text)) throw new TrainingDataException(path, lineNo, $"the {columns[textCol]} column is empty");
            if (pair is not null && string.IsNullOrWhiteSpace(pair)) throw new TrainingDataException(path, lineNo, $"the {columns[pairCol]} column is empty");
            return Example(text, pair, LabelFromText(path, lineNo, cells[labelCol].Trim()), path, lineNo);
        }
    }

    private IEnumerable<HeadFeatures> ReadJsonl(string path, TrainingDataOptions options) =>
        TrainingRecords.JsonlObjects(path, options, "{\"text\", \"text_pair\"?, \"label\"}", (o, lineNo) => JsonlExample(path, lineNo, o));

    private HeadFeatures JsonlExample(string path, int lineNo, JsonElement o)
    {
        string? text = null, pair = null;
        JsonElement? label = null;
        foreach (var p in o.EnumerateObject())
        {
            switch (p.Name)
            {
                case "text":
                    text = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : throw new TrainingDataException(path, lineNo, "text must be a string");
                    break;
                case "text_pair":
                    if (p.Value.ValueKind == JsonValueKind.Null) break;
                    pair = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : throw new TrainingDataException(path, lineNo, "text_pair must be a string");
                    break;
                case "label":
                    label = p.Value.Clone();
                    break;
                default:
                    throw new TrainingDataException(path, lineNo, $"unknown field '{p.Name}' (expected text, text_pair, label)");
            }
        }
        if (string.IsNullOrWhiteSpace(text)) throw new TrainingDataException(path, lineNo, text is null ? "text is missing" : "text is empty");
        if (pair is not null && string.IsNullOrWhiteSpace(pair)) throw new TrainingDataException(path, lineNo, "text_pair is empty");
        if (label is null) throw new TrainingDataException(path, lineNo, "label is missing");
        return Example(text, pair, LabelFromJson(path, lineNo, label.Value), path, lineNo);
    }

    private HeadFeatures Example(string text, string? pair, int[] labelIds, string path, int lineNo)
    {
        ClassificationState state;
        var source = $"{path}:{lineNo}";
        if (MultiLabel)
        {
            var targets = new float[Labels.Count];
            foreach (var id in labelIds) targets[id] = 1f;
            state = new ClassificationState { Targets = targets, Source = source };
        }
        else
        {
            if (labelIds.Length != 1) throw new TrainingDataException(path, lineNo, $"a single_label head needs exactly one label per example, got {labelIds.Length}");
            state = new ClassificationState { Label = labelIds[0], Source = source };
        }
        return new HeadFeatures { Sequences = [_head.EncodeText(text, pair)], State = state };
    }

    /// <summary>A label cell: a known label name, or an integer index into the labels. Multi-label: names/indices separated by ','.</summary>
    private int[] LabelFromText(string path, int lineNo, string cell)
    {
        if (cell.Length == 0) throw new TrainingDataException(path, lineNo, "the label column is empty");
        var parts = MultiLabel ? cell.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) : [cell];
        return parts.Select(p => LabelIndex(path, lineNo, p, allowIndexText: true)).ToArray();
    }

    private int[] LabelFromJson(string path, int lineNo, JsonElement label)
    {
        switch (label.ValueKind)
        {
            case JsonValueKind.String:
                return [LabelIndex(path, lineNo, label.GetString()!, allowIndexText: false)];
            case JsonValueKind.Number:
                return [IndexIndex(path, lineNo, label)];
            case JsonValueKind.Array when MultiLabel:
                return label.EnumerateArray().Select(e => e.ValueKind switch
                {
                    JsonValueKind.String => LabelIndex(path, lineNo, e.GetString()!, allowIndexText: false),
                    JsonValueKind.Number => IndexIndex(path, lineNo, e),
                    _ => throw new TrainingDataException(path, lineNo, "label list items must be label names or indices"),
                }).ToArray();
            default:
                throw new TrainingDataException(path, lineNo, $"label must be a label name or an index{(MultiLabel ? " (or a list of them)" : "")}");
        }
    }

    private int IndexIndex(string path, int lineNo, JsonElement e)
    {
        if (!e.TryGetInt32(out var i) || i < 0 || i >= Labels.Count)
            throw new TrainingDataException(path, lineNo, $"label {e.GetRawText()} is not an index of the {Labels.Count} labels (0..{Labels.Count - 1}: {string.Join(", ", Labels)})");
        return i;
    }

    private int LabelIndex(string path, int lineNo, string value, bool allowIndexText)
    {
        for (var i = 0; i < Labels.Count; i++)
            if (string.Equals(Labels[i], value, StringComparison.Ordinal)) return i;
        if (allowIndexText && int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            if (index < Labels.Count) return index;
            throw new TrainingDataException(path, lineNo, $"label {index} is not an index of the {Labels.Count} labels (0..{Labels.Count - 1}: {string.Join(", ", Labels)})");
        }
        throw new TrainingDataException(path, lineNo, $"label '{value}' is not one of the head's labels ({string.Join(", ", Labels)})");
    }

    public Tensor Loss(Tensor logits, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        var states = batch.Items.Select((item, i) => item.State as ClassificationState
            ?? throw new ArgumentException($"batch item {i} has no training label")).ToList();
        if (batch.Items.Any(item => item.Sequences.Count != 1))
            throw new ArgumentException("a text-classification example has exactly one sequence");
        var x = logits.to(ScalarType.Float32);
        Tensor loss;
        if (MultiLabel)
        {
            var flat = states.SelectMany((s, i) => s.Targets ?? throw new ArgumentException($"batch item {i} ({s.Source}) has no multi-label targets")).ToArray();
            var targets = tensor(flat, [states.Count, Labels.Count], ScalarType.Float32, batch.Device);
            var elementwise = nn.functional.binary_cross_entropy_with_logits(x, targets, reduction: nn.Reduction.None);
            if (ClassWeights is { } w)
                elementwise = elementwise.mul(tensor(w.Select(v => (float)v).ToArray(), ScalarType.Float32, batch.Device));
            loss = elementwise.mean();
        }
        else
        {
            var ids = states.Select((s, i) => (long)(s.Label ?? throw new ArgumentException($"batch item {i} ({s.Source}) has no label"))).ToArray();
            var targets = tensor(ids, ScalarType.Int64, batch.Device);
            var weight = ClassWeights is { } w ? tensor(w.Select(v => (float)v).ToArray(), ScalarType.Float32, batch.Device) : null;
            loss = nn.functional.cross_entropy(x, targets, weight: weight);
        }
        return loss.MoveToOuterDisposeScope();
    }

    public IHeadMetric CreateMetric() => new ClassificationMetric(Labels.Count, MultiLabel);
}
