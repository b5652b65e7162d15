using System.Globalization;
using System.Text.Json;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using static TorchSharp.torch;

namespace BertHost.Heads.QuestionAnswering;

/// <summary>
/// Training support of a question-answering head.
/// Formats: <c>squad</c> (the SQuAD v1.1 / v2.0 JSON file: <c>data[].paragraphs[].context</c>,
/// <c>qas[].id/question/answers[].text/answer_start</c>, <c>is_impossible</c>) and <c>squad-jsonl</c> (one Hugging Face
/// datasets row per line: <c>{"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}</c>).
/// Each question becomes one example with every window of its context; the first gold answer is mapped to start/end
/// token positions in each window, and a window that does not hold the whole answer (or an impossible question) points
/// at [CLS] (0, 0), as transformers' run_qa preprocessing. <c>answer_start</c> counts characters as Python does (code
/// points) and is converted to UTF-16. Loss: (CE(start) + CE(end)) / 2 per window, averaged, padding excluded.
/// Metric: SQuAD exact match and F1 (x100) of the pipeline's best answer, max over the gold answers.
/// </summary>
public sealed class QuestionAnsweringTraining : IHeadTraining
{
    public const string Squad = "squad";
    public const string SquadJsonl = "squad-jsonl";

    private readonly QuestionAnsweringHead _head;

    internal QuestionAnsweringTraining(QuestionAnsweringHead head) => _head = head;

    public IReadOnlyList<string> DataFormats { get; } = [Squad, SquadJsonl];

    public IEnumerable<HeadFeatures> ReadExamples(string path, TrainingDataOptions options)
    {
        TrainingRecords.Check(path, options);
        var format = options.Format ?? DetectFormat(path);
        return format switch
        {
            Squad => ReadSquad(path, options),
            SquadJsonl => ReadJsonl(path, options),
            _ => throw TrainingRecords.UnknownFormat(format, DataFormats),
        };
    }

    /// <summary>.jsonl/.ndjson = squad-jsonl; otherwise a file whose first value is an object with "data" = squad.</summary>
    public static string DetectFormat(string path)
    {
        var ext = Path.GetExtension(path).ToLowerInvariant();
        return ext is ".jsonl" or ".ndjson" ? SquadJsonl : Squad;
    }

    private sealed record Question(string Id, string Text, string Context, IReadOnlyList<(string Text, int Start)> Answers, bool Impossible, int Line);

    private IEnumerable<HeadFeatures> ReadSquad(string path, TrainingDataOptions options)
    {
        JsonDocument doc;
        try
        {
            using var stream = File.OpenRead(path);
            doc = JsonDocument.Parse(stream, new JsonDocumentOptions { AllowTrailingCommas = false });
        }
        catch (JsonException e)
        {
            throw new TrainingDataException(path, (int)(e.LineNumber ?? -1) + 1, $"not valid JSON: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array)
                throw new TrainingDataException(path, 0, "a SQuAD file is an object with a \"data\" list of articles (data[].paragraphs[].qas[])");
            var v2 = root.TryGetProperty("version", out var version) && version.ValueKind == JsonValueKind.String && version.GetString()!.StartsWith("v2", StringComparison.Ordinal);
            var questions = new List<Question>();
            var malformed = new List<TrainingDataException>();
            var articleIndex = 0;
            foreach (var article in data.EnumerateArray())
            {
                var where = $"data[{articleIndex}]";
                articleIndex++;
                if (article.ValueKind != JsonValueKind.Object || !article.TryGetProperty("paragraphs", out var paragraphs) || paragraphs.ValueKind != JsonValueKind.Array)
                {
                    Fail(new TrainingDataException(path, 0, $"{where} must be an object with a \"paragraphs\" list"));
                    continue;
                }
                var paragraphIndex = 0;
                foreach (var paragraph in paragraphs.EnumerateArray())
                {
                    var pw = $"{where}.paragraphs[{paragraphIndex}]";
                    paragraphIndex++;
                    if (paragraph.ValueKind != JsonValueKind.Object
                        || !paragraph.TryGetProperty("context", out var ctx) || ctx.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(ctx.GetString())
                        || !paragraph.TryGetProperty("qas", out var qas) || qas.ValueKind != JsonValueKind.Array)
                    {
                        Fail(new TrainingDataException(path, 0, $"{pw} must be an object with a non-empty \"context\" string and a \"qas\" list"));
                        continue;
                    }
                    var context = ctx.GetString()!;
                    var qIndex = 0;
                    foreach (var qa in qas.EnumerateArray())
                    {
                        try
                        {
                            questions.Add(ReadQuestion(path, 0, $"{pw}.qas[{qIndex}]", qa, context, null));
                        }
                        catch (TrainingDataException e)
                        {
                            Fail(e);
                        }
                        qIndex++;
                    }
                }
            }
            v2 |= questions.Any(q => q.Impossible);
            foreach (var example in TrainingRecords.Each(questions, q => Example(path, q, v2), options))
                yield return example;

            void Fail(TrainingDataException e)
            {
                if (!options.SkipMalformed) throw e;
                TrainingRecords.Skip(options, e);
            }
        }
    }

    private IEnumerable<HeadFeatures> ReadJsonl(string path, TrainingDataOptions options)
    {
        var questions = new List<Question>();
        foreach (var (lineNo, line) in TrainingRecords.NonBlankLines(path))
        {
            try
            {
                var doc = TrainingRecords.ParseLine(path, lineNo, line);
                using (doc)
                {
                    var o = doc.RootElement;
                    if (o.ValueKind != JsonValueKind.Object || !o.TryGetProperty("context", out var ctx) || ctx.ValueKind != JsonValueKind.String
                        || string.IsNullOrWhiteSpace(ctx.GetString()))
                        throw new TrainingDataException(path, lineNo, "each line must be an object {\"id\", \"question\", \"context\", \"answers\": {\"text\": [...], \"answer_start\": [...]}} with a non-empty context");
                    questions.Add(ReadQuestion(path, lineNo, $"line {lineNo}", o, ctx.GetString()!, o.TryGetProperty("answers", out var a) ? a : null));
                }
            }
            catch (TrainingDataException e) when (options.SkipMalformed)
            {
                TrainingRecords.Skip(options, e);
            }
        }
        var v2 = questions.Any(q => q.Impossible);
        foreach (var example in TrainingRecords.Each(questions, q => Example(path, q, v2), options))
            yield return example;
    }

    /// <summary>One question (SQuAD qas item, or a jsonl row whose answers are columnar: <paramref name="columnar"/>).</summary>
    private static Question ReadQuestion(string path, int line, string where, JsonElement qa, string context, JsonElement? columnar)
    {
        if (qa.ValueKind != JsonValueKind.Object) throw new TrainingDataException(path, line, $"{where} must be an object");
        var id = qa.TryGetProperty("id", out var idElement) && idElement.ValueKind is JsonValueKind.String or JsonValueKind.Number
            ? (idElement.ValueKind == JsonValueKind.String ? idElement.GetString()! : idElement.GetRawText())
            : where;
        string Name() => id == where ? where : $"question {id} ({where})";
        if (!qa.TryGetProperty("question", out var qe) || qe.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(qe.GetString()))
            throw new TrainingDataException(path, line, $"{Name()}: \"question\" must be a non-empty string");
        var impossible = false;
        if (qa.TryGetProperty("is_impossible", out var ie))
            impossible = ie.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new TrainingDataException(path, line, $"{Name()}: is_impossible must be true or false"),
            };

        var answers = new List<(string, int)>();
        if (columnar is { } col)
        {
            if (col.ValueKind != JsonValueKind.Object || !col.TryGetProperty("text", out var texts) || texts.ValueKind != JsonValueKind.Array
                || !col.TryGetProperty("answer_start", out var starts) || starts.ValueKind != JsonValueKind.Array || texts.GetArrayLength() != starts.GetArrayLength())
                throw new TrainingDataException(path, line, $"{Name()}: \"answers\" must be {{\"text\": [...], \"answer_start\": [...]}} with lists of the same length");
            foreach (var (t, s) in texts.EnumerateArray().Zip(starts.EnumerateArray())) answers.Add(Answer(path, line, Name(), t, s, context));
        }
        else if (qa.TryGetProperty("answers", out var list))
        {
            if (list.ValueKind != JsonValueKind.Array) throw new TrainingDataException(path, line, $"{Name()}: \"answers\" must be a list");
            foreach (var a in list.EnumerateArray())
            {
                if (a.ValueKind != JsonValueKind.Object || !a.TryGetProperty("text", out var t) || !a.TryGetProperty("answer_start", out var s))
                    throw new TrainingDataException(path, line, $"{Name()}: each answer must be an object with \"text\" and \"answer_start\"");
                answers.Add(Answer(path, line, Name(), t, s, context));
            }
        }
        if (impossible && answers.Count > 0)
            throw new TrainingDataException(path, line, $"{Name()}: is_impossible is true but answers are given");
        if (!impossible && answers.Count == 0 && columnar is null && !qa.TryGetProperty("is_impossible", out _))
            throw new TrainingDataException(path, line, $"{Name()}: no answers (and not marked is_impossible)");
        return new Question(id, qe.GetString()!, context, answers, impossible || answers.Count == 0, line);
    }

    private static (string Text, int Start) Answer(string path, int line, string name, JsonElement text, JsonElement start, string context)
    {
        if (text.ValueKind != JsonValueKind.String || text.GetString()!.Length == 0)
            throw new TrainingDataException(path, line, $"{name}: an answer's text must be a non-empty string");
        if (start.ValueKind != JsonValueKind.Number || !start.TryGetInt32(out var codePoints) || codePoints < 0)
            throw new TrainingDataException(path, line, $"{name}: answer_start must be a non-negative integer, got {start.GetRawText()}");
        var s = Utf16Index(context, codePoints);
        var t = text.GetString()!;
        if (s is null || s.Value + t.Length > context.Length)
            throw new TrainingDataException(path, line, $"{name}: answer '{t}' at answer_start {codePoints} runs past the end of the context ({context.Length} characters)");
        if (string.CompareOrdinal(context, s.Value, t, 0, t.Length) != 0)
            throw new TrainingDataException(path, line,
                $"{name}: the context at answer_start {codePoints} reads '{context.Substring(s.Value, t.Length)}', not the answer '{t}'");
        return (t, s.Value);
    }

    /// <summary>UTF-16 index of code point <paramref name="codePoints"/> (Python's str index), or null past the end.</summary>
    private static int? Utf16Index(string s, int codePoints)
    {
        var i = 0;
        for (var k = 0; k < codePoints; k++)
        {
            if (i >= s.Length) return null;
            i += char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;
        }
        return i <= s.Length ? i : null;
    }

    private HeadFeatures Example(string path, Question q, bool v2)
    {
        var o = _head.Options;
        IReadOnlyList<EncodedSequence> windows;
        try
        {
            windows = _head.EncodeWindows(q.Text, q.Context, o.MaxQuestionLen, _head.DocStride, _head.MaxLength,
                (_, message) => new TrainingDataException(path, q.Line, $"question {q.Id}: {message}"));
        }
        catch (ArgumentException e)
        {
            throw new TrainingDataException(path, q.Line, $"question {q.Id}: {e.Message}");
        }
        var starts = new int[windows.Count];
        var ends = new int[windows.Count];
        if (!q.Impossible)
        {
            var (text, startChar) = q.Answers[0];
            for (var w = 0; w < windows.Count; w++) (starts[w], ends[w]) = Positions(windows[w], startChar, startChar + text.Length);
        }
        var settings = new DecodeSettings(1, o.MaxAnswerLen, o.HandleImpossibleAnswer || v2, AlignToWords: true);
        return new HeadFeatures
        {
            Sequences = windows,
            State = new QuestionAnsweringState
            {
                Context = q.Context, Settings = settings, StartPositions = starts, EndPositions = ends,
                GoldAnswers = q.Answers.Select(a => a.Text).ToList(), Id = q.Id,
                Source = q.Line > 0 ? $"{path}:{q.Line}" : $"{path} question {q.Id}",
            },
        };
    }

    /// <summary>
    /// Token positions of the answer characters [startChar, endChar) in one window: the last context token starting at or
    /// before startChar and the first context token ending at or after endChar; (0, 0) = [CLS] when the window's context
    /// does not hold the whole answer (run_qa's prepare_train_features).
    /// </summary>
    public static (int Start, int End) Positions(EncodedSequence window, int startChar, int endChar)
    {
        if (window.SequenceRange(1) is not { } range) return (0, 0);
        var (first, end) = range;
        var last = end - 1;
        if (!(window.Offsets[first].Start <= startChar && window.Offsets[last].End >= endChar)) return (0, 0);
        var s = first;
        while (s + 1 <= last && window.Offsets[s + 1].Start <= startChar) s++;
        var e = last;
        while (e - 1 >= first && window.Offsets[e - 1].End >= endChar) e--;
        return (s, e);
    }

    public Tensor Loss(Tensor logits, HeadBatch batch)
    {
        using var scope = NewDisposeScope();
        if (logits.ndim != 3 || logits.shape[0] != batch.RowCount || logits.shape[2] != 2)
            throw new ArgumentException($"logits must be [{batch.RowCount}, T, 2], got [{string.Join(", ", logits.shape)}]");
        var T = (int)logits.shape[1];
        var startTargets = new long[batch.RowCount];
        var endTargets = new long[batch.RowCount];
        var padding = new bool[batch.RowCount * T];
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var item = batch.Items[i];
            var state = item.State as QuestionAnsweringState;
            if (state?.StartPositions is not { } sp || state.EndPositions is not { } ep || sp.Length != item.Sequences.Count || ep.Length != item.Sequences.Count)
                throw new ArgumentException($"batch item {i} ({state?.Source}) has no answer positions for its windows");
            for (var j = 0; j < item.Sequences.Count; j++)
            {
                var row = batch.RowStarts[i] + j;
                startTargets[row] = sp[j];
                endTargets[row] = ep[j];
                for (var t = item.Sequences[j].Length; t < T; t++) padding[row * T + t] = true;
            }
        }
        var x = logits.to(ScalarType.Float32).masked_fill(tensor(padding, [batch.RowCount, T, 1], device: logits.device), SpanDecoder.MaskedLogit);
        var startLoss = nn.functional.cross_entropy(x.select(2, 0), tensor(startTargets, ScalarType.Int64, logits.device));
        var endLoss = nn.functional.cross_entropy(x.select(2, 1), tensor(endTargets, ScalarType.Int64, logits.device));
        return startLoss.add(endLoss).div(2).MoveToOuterDisposeScope();
    }

    public IHeadMetric CreateMetric() => new QuestionAnsweringMetric(_head);
}

/// <summary>SQuAD exact match and F1 (x100) of the best answer per question; also the count of examples.</summary>
public sealed class QuestionAnsweringMetric : IHeadMetric
{
    private readonly QuestionAnsweringHead _head;
    private double _exact, _f1;
    private long _examples;

    internal QuestionAnsweringMetric(QuestionAnsweringHead head) => _head = head;

    public string Primary => "f1";

    public void Update(Tensor logits, HeadBatch batch)
    {
        var answers = _head.DecodeAnswers(logits, batch, topK: 1);
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var state = (QuestionAnsweringState)batch.Items[i].State!;
            var gold = state.GoldAnswers ?? throw new ArgumentException($"batch item {i} has no gold answers");
            var prediction = answers[i].Count > 0 ? answers[i][0].Answer : "";
            _exact += SquadScoring.MaxExactMatch(prediction, gold);
            _f1 += SquadScoring.MaxF1(prediction, gold);
            _examples++;
        }
    }

    public IReadOnlyDictionary<string, double> Compute() => new Dictionary<string, double>
    {
        ["exact_match"] = _examples == 0 ? 0 : 100.0 * _exact / _examples,
        ["f1"] = _examples == 0 ? 0 : 100.0 * _f1 / _examples,
        ["examples"] = _examples,
    };
}
