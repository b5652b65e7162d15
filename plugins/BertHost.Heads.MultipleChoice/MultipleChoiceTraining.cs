using System.Globalization;
using System.Text.Json;
using BertHost.Abstractions.Heads;
using static TorchSharp.torch;

namespace BertHost.Heads.MultipleChoice;

/// <summary>
/// Training support of a multiple-choice head: readers for <c>swag-csv</c> (SWAG's CSV: a header naming <c>sent1</c>
/// (the context), optionally <c>sent2</c> (the start of the ending, prepended to every ending as the question),
/// <c>ending0</c>..<c>endingN</c> and <c>label</c>; other columns such as <c>video-id</c> are ignored; RFC 4180 quoting;
/// a UTF-8 BOM is skipped) and <c>jsonl</c> (<c>{"context", "choices", "label", "question"?}</c>, label = index of the
/// right choice or its text), the loss (cross-entropy over each item's own choices, so items of a batch may have
/// different numbers of choices) and the metric (accuracy).
/// </summary>
public sealed class MultipleChoiceTraining : IHeadTraining
{
    public const string SwagCsv = "swag-csv";
    public const string Jsonl = TrainingRecords.Jsonl;

    private static readonly string[] JsonlFields = ["context", "choices", "question", "label"];

    private readonly MultipleChoiceHead _head;

    internal MultipleChoiceTraining(MultipleChoiceHead head) => _head = head;

    public IReadOnlyList<string> DataFormats { get; } = [SwagCsv, Jsonl];

    public IEnumerable<HeadFeatures> ReadExamples(string path, TrainingDataOptions options)
    {
        TrainingRecords.Check(path, options);
        var format = options.Format ?? DetectFormat(path);
        return format switch
        {
            SwagCsv => ReadCsv(path, options),
            Jsonl => ReadJsonl(path, options),
            _ => throw TrainingRecords.UnknownFormat(format, DataFormats),
        };
    }

    /// <summary>By extension (.csv, .jsonl/.json/.ndjson), else by the first non-blank character ('{' = jsonl).</summary>
    public static string DetectFormat(string path) => TrainingRecords.DetectJsonlOr(path, SwagCsv, ".csv");

    private IEnumerable<HeadFeatures> ReadCsv(string path, TrainingDataOptions options)
    {
        using var reader = TrainingRecords.Open(path);
        var csv = new CsvRecordReader(reader);
        var header = csv.Next() ?? throw new TrainingDataException(path, 1, "the file is empty (a swag-csv file starts with a header line)");
        if (header.Error is not null) throw new TrainingDataException(path, header.Line, header.Error);
        var columns = header.Fields.Select(c => c.Trim().TrimStart('\uFEFF')).ToArray();
        int Find(string name) => Array.FindIndex(columns, c => string.Equals(c, name, StringComparison.OrdinalIgnoreCase));
        var contextCol = Find("sent1");
        var questionCol = Find("sent2");
        var labelCol = Find("label");
        var endingCols = new List<int>();
        for (int i; (i = Find($"ending{endingCols.Count}")) >= 0;) endingCols.Add(i);
        var expected = "a header with sent1, optionally sent2, ending0..endingN (at least 2) and label, as SWAG's train.csv";
        if (contextCol < 0) throw new TrainingDataException(path, header.Line, $"header [{string.Join(", ", columns)}] has no sent1 (context) column; expected {expected}");
        if (labelCol < 0) throw new TrainingDataException(path, header.Line, $"header [{string.Join(", ", columns)}] has no label column; expected {expected}");
        if (endingCols.Count < 2)
            throw new TrainingDataException(path, header.Line, $"header [{string.Join(", ", columns)}] has {(endingCols.Count == 0 ? "no ending0" : "only ending0")} column; expected {expected}");
        var strayEnding = columns.FirstOrDefault(c => c.StartsWith("ending", StringComparison.OrdinalIgnoreCase)
            && int.TryParse(c.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out var k) && k >= endingCols.Count);
        if (strayEnding is not null)
            throw new TrainingDataException(path, header.Line, $"header column {strayEnding} does not follow ending0..ending{endingCols.Count - 1} (ending columns must be numbered from 0 without gaps)");
        if (endingCols.Count > _head.Options.MaxChoices)
            throw new TrainingDataException(path, header.Line, $"the file has {endingCols.Count} endings per example; this head accepts at most {_head.Options.MaxChoices} choices (options.max_choices)");

        foreach (var example in TrainingRecords.Each(Records(), r => CsvExample(path, r, columns, contextCol, questionCol, endingCols, labelCol), options))
            yield return example;

        IEnumerable<CsvRecordReader.Record> Records()
        {
            while (csv.Next() is { } record)
                if (!record.Blank) yield return record;
        }
    }

    private HeadFeatures CsvExample(string path, CsvRecordReader.Record record, string[] columns, int contextCol, int questionCol,
        List<int> endingCols, int labelCol)
    {
        var line = record.Line;
        if (record.Error is not null) throw new TrainingDataException(path, line, record.Error);
        var cells = record.Fields;
        if (cells.Count != columns.Length)
            throw new TrainingDataException(path, line, $"{cells.Count} comma-separated columns, the header has {columns.Length}");
        var context = cells[contextCol];
        if (string.IsNullOrWhiteSpace(context)) throw new TrainingDataException(path, line, $"the {columns[contextCol]} (context) column is empty");
        var question = questionCol >= 0 && !string.IsNullOrWhiteSpace(cells[questionCol]) ? cells[questionCol] : null;
        var choices = new List<string>(endingCols.Count);
        foreach (var col in endingCols)
        {
            if (string.IsNullOrWhiteSpace(cells[col])) throw new TrainingDataException(path, line, $"the {columns[col]} column is empty");
            choices.Add(cells[col]);
        }
        var labelText = cells[labelCol].Trim();
        if (labelText.Length == 0) throw new TrainingDataException(path, line, "the label column is empty");
        if (!int.TryParse(labelText, NumberStyles.None, CultureInfo.InvariantCulture, out var label) || label >= choices.Count)
            throw new TrainingDataException(path, line, $"label '{labelText}' is not an ending index (0..{choices.Count - 1})");
        return Encode(path, line, context, question, choices, label);
    }

    private HeadFeatures Encode(string path, int line, string context, string? question, IReadOnlyList<string> choices, int label)
    {
        try
        {
            return _head.EncodeItem(context, question, choices, label, $"{path}:{line}");
        }
        catch (HeadInputException e)
        {
            throw new TrainingDataException(path, line, e.Message);
        }
    }

    private IEnumerable<HeadFeatures> ReadJsonl(string path, TrainingDataOptions options) =>
        TrainingRecords.JsonlObjects(path, options, "{\"context\", \"choices\", \"label\", \"question\"?}", (o, lineNo) => JsonlExample(path, lineNo, o));

    private HeadFeatures JsonlExample(string path, int lineNo, JsonElement o)
    {
        MultipleChoiceHead.Item item;
        try
        {
            item = _head.ReadInput(o, JsonlFields);
        }
        catch (HeadInputException e)
        {
            throw new TrainingDataException(path, lineNo, e.Field == "label" ? e.Message : $"{e.Field}: {e.Message}");
        }
        if (!o.TryGetProperty("label", out var l) || l.ValueKind == JsonValueKind.Null)
            throw new TrainingDataException(path, lineNo, "label is missing");
        int label;
        switch (l.ValueKind)
        {
            case JsonValueKind.Number:
                if (!l.TryGetInt32(out label) || label < 0 || label >= item.Choices.Count)
                    throw new TrainingDataException(path, lineNo, $"label {l.GetRawText()} is not a choice index (0..{item.Choices.Count - 1})");
                break;
            case JsonValueKind.String:
                var text = l.GetString()!;
                label = item.Choices.ToList().FindIndex(c => string.Equals(c, text, StringComparison.Ordinal));
                if (label < 0) throw new TrainingDataException(path, lineNo, $"label '{text}' is not one of the choices");
                break;
            default:
                throw new TrainingDataException(path, lineNo, $"label must be a choice index or the text of a choice, got {HeadOptions.Describe(l)}");
        }
        return Encode(path, lineNo, item.Context, item.Question, item.Choices, label);
    }

    /// <summary>
    /// Mean over the items of the cross-entropy of each item's choice scores (its rows in <paramref name="logits"/>,
    /// [RowCount]) against its right choice. Items may have different numbers of choices: the scores are gathered
    /// into [items, most choices] with the missing choices masked out.
    /// </summary>
    public Tensor Loss(Tensor logits, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        var x = logits.to(ScalarType.Float32).reshape(-1);
        if (x.shape[0] != batch.RowCount)
            throw new ArgumentException($"logits have {x.shape[0]} values, expected one per row ({batch.RowCount} rows)");
        var items = batch.Items.Count;
        var width = Enumerable.Range(0, items).Select(batch.RowCountOf).DefaultIfEmpty(0).Max();
        var index = new long[items * width];
        var padding = new bool[items * width];
        var targets = new long[items];
        for (var i = 0; i < items; i++)
        {
            var state = batch.Items[i].State as MultipleChoiceState ?? throw new ArgumentException($"batch item {i} has no training label");
            var n = batch.RowCountOf(i);
            var label = state.Label ?? throw new ArgumentException($"batch item {i} ({state.Source}) has no label");
            if (label < 0 || label >= n) throw new ArgumentException($"batch item {i} ({state.Source}) has label {label} but {n} choices");
            targets[i] = label;
            for (var j = 0; j < width; j++)
            {
                index[i * width + j] = batch.RowStarts[i] + Math.Min(j, n - 1);
                padding[i * width + j] = j >= n;
            }
        }
        var device = x.device;
        var scores = x.index_select(0, tensor(index, ScalarType.Int64, device)).view(items, width)
            .masked_fill(tensor(padding, [items, width], ScalarType.Bool, device), finfo(ScalarType.Float32).min);
        var loss = nn.functional.cross_entropy(scores, tensor(targets, ScalarType.Int64, device));
        return loss.MoveToOuterDisposeScope();
    }

    public IHeadMetric CreateMetric() => new MultipleChoiceMetric();
}
