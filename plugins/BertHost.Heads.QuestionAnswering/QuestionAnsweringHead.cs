using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Heads.Sdk;
using BertHost.Abstractions.Text;
using static TorchSharp.torch;

namespace BertHost.Heads.QuestionAnswering;

/// <summary>
/// An extractive question-answering head, like transformers' question-answering pipeline over a
/// BertForQuestionAnswering. Input <c>{"question": "...", "context": "..."}</c>; output <c>{"answer", "score", "start",
/// "end"}</c> (UTF-16 offsets into the context; <c>answer</c> = context[start..end]), or a list of them, best first,
/// when the request's <c>top_k</c> is above 1. A context longer than one window is split into windows
/// (question + context part, <c>doc_stride</c> tokens shared), each a body row; answers compete across windows.
/// Request parameters: <c>top_k</c> (1), <c>max_answer_len</c> (15), <c>max_question_len</c> (64), <c>doc_stride</c>,
/// <c>max_seq_len</c>, <c>handle_impossible_answer</c> (false), <c>align_to_words</c> (true).
/// Logits from <see cref="Forward"/> are [rows, T, 2]: start and end logits of every token.
/// </summary>
public sealed class QuestionAnsweringHead : TaskHead<QuestionAnsweringOptions, QuestionAnsweringModule>
{
    public const int MaxDocStride = 128;

    private static readonly string[] InputFields = ["question", "context"];

    internal QuestionAnsweringHead(HeadContext context, QuestionAnsweringOptions options, QuestionAnsweringModule module, WeightsOrigin origin)
        : base(context, QuestionAnsweringKind.KindName, options, module, origin, options.MaxLength)
    {
        DocStride = options.DocStride ?? DefaultStride(MaxLength);
        Training = new QuestionAnsweringTraining(this);
    }

    /// <summary>The default doc_stride (before the per-question cap, see <see cref="EncodeWindows"/>).</summary>
    public int DocStride { get; }

    /// <summary>The pipeline's default: min(max_seq_len / 2, 128).</summary>
    public static int DefaultStride(int maxLength) => Math.Min(maxLength / 2, MaxDocStride);

    /// <summary>The request parameters Encode reads; the host refuses others.</summary>
    public override IReadOnlyCollection<string>? Parameters { get; } = ["top_k", "max_answer_len", "max_question_len", "doc_stride", "max_seq_len", "handle_impossible_answer", "align_to_words"];

    protected override JsonObject OptionsJson() => Options.ToJson(MaxLength, DocStride);

    protected override void DescribeMore(JsonObject description) => description["doc_stride"] = DocStride;

    public override HeadFeatures Encode(JsonElement input, JsonElement parameters)
    {
        var (question, context) = ReadInput(input);
        var p = ReadParameters(parameters);
        var windows = EncodeWindows(question, context, p.MaxQuestionLen, p.DocStride, p.MaxSeqLen,
            (field, message) => new HeadInputException(field, message));
        if (!Context.TruncateOversized && windows.Count > 1)
            throw new HeadInputException("context",
                $"the question and context need {windows.Count} windows of {p.MaxSeqLen} tokens; this deployment refuses oversized inputs instead of splitting them (the context must fit in one window with the question)");
        return new HeadFeatures { Sequences = windows, State = new QuestionAnsweringState { Context = context, Settings = p.Settings } };
    }

    /// <summary>
    /// The windows of a question and context, as the pipeline's preprocessing: the question (cut to
    /// <paramref name="maxQuestionLen"/> tokens) + a part of the context, truncation only_second, overflowing windows
    /// sharing <paramref name="docStride"/> context tokens. A stride that leaves no room to move (at least the context
    /// tokens a window holds) is halved to half the window's context tokens, so small bodies still work.
    /// </summary>
    internal IReadOnlyList<EncodedSequence> EncodeWindows(string question, string context, int maxQuestionLen, int docStride, int maxLength,
        Func<string, string, Exception> error)
    {
        var tokenizer = Context.Tokenizer;
        var q = tokenizer.Encode(question, null, new EncodeOptions { Truncation = TruncationStrategy.DoNotTruncate, AddSpecialTokens = false })[0];
        if (q.Length == 0) throw error("question", "the question has no tokens");
        var questionLength = q.Length;
        if (questionLength > maxQuestionLen)
        {
            question = question[..q.Offsets[maxQuestionLen - 1].End];
            questionLength = maxQuestionLen;
        }
        var budget = maxLength - 3 - questionLength;
        if (budget < 1)
            throw error("question",
                $"the question is {questionLength} tokens: with {maxLength} tokens per window (3 of them special) no context token fits; ask a shorter question or lower max_question_len");
        var stride = docStride >= budget ? budget / 2 : docStride;
        var windows = tokenizer.Encode(question, context, new EncodeOptions
        {
            MaxLength = maxLength, Truncation = TruncationStrategy.OnlySecond, Stride = stride, ReturnOverflowing = true,
        });
        if (windows[0].SequenceRange(1) is null) throw error("context", "the context has no tokens");
        return windows;
    }

    private static (string Question, string Context) ReadInput(JsonElement input)
    {
        var fields = HeadInput.Fields(input, InputFields, "an object {\"question\": \"...\", \"context\": \"...\"}",
            "a question-answering input has question and context");
        const string send = "send {\"question\": \"...\", \"context\": \"...\"}";
        return (HeadInput.Required(fields, "question", $"question is missing: {send}"), HeadInput.Required(fields, "context", $"context is missing: {send}"));
    }

    private sealed record RequestParameters(DecodeSettings Settings, int MaxQuestionLen, int DocStride, int MaxSeqLen);

    private RequestParameters ReadParameters(JsonElement parameters)
    {
        var topK = 1;
        var maxAnswerLen = Options.MaxAnswerLen;
        var maxQuestionLen = Options.MaxQuestionLen;
        int? docStride = null;
        var maxSeqLen = MaxLength;
        var impossible = Options.HandleImpossibleAnswer;
        var align = true;
        if (HeadInput.CheckParameters(parameters))
        {
            foreach (var p in parameters.EnumerateObject())
            {
                if (p.Value.ValueKind == JsonValueKind.Null) continue;
                var field = "parameters." + p.Name;
                Exception Error(string m) => new HeadInputException(field, m);
                switch (p.Name)
                {
                    case "top_k": topK = HeadOptions.Int(p.Name, p.Value, 1, Error); break;
                    case "max_answer_len": maxAnswerLen = HeadOptions.Int(p.Name, p.Value, 1, Error); break;
                    case "max_question_len": maxQuestionLen = HeadOptions.Int(p.Name, p.Value, 1, Error); break;
                    case "doc_stride": docStride = HeadOptions.Int(p.Name, p.Value, 0, Error); break;
                    case "max_seq_len": maxSeqLen = Math.Min(MaxLength, HeadOptions.Int(p.Name, p.Value, 8, Error)); break;
                    case "handle_impossible_answer": impossible = HeadOptions.Bool(p.Name, p.Value, Error); break;
                    case "align_to_words": align = HeadOptions.Bool(p.Name, p.Value, Error); break;
                }
            }
        }
        var stride = docStride ?? (maxSeqLen == MaxLength ? DocStride : Math.Min(DocStride, DefaultStride(maxSeqLen)));
        return new RequestParameters(new DecodeSettings(topK, maxAnswerLen, impossible, align), maxQuestionLen, stride, maxSeqLen);
    }

    public override Tensor Forward(BodyOutput body, HeadBatch batch)
    {
        var hidden = body.LastHiddenState;
        if (hidden.shape[0] != batch.RowCount)
            throw new ArgumentException($"the body output has {hidden.shape[0]} rows but the batch has {batch.RowCount}");
        return Module.call(hidden);
    }

    public override IReadOnlyList<JsonNode> Decode(Tensor logits, HeadBatch batch)
    {
        var all = DecodeAnswers(logits, batch, null);
        var results = new List<JsonNode>(all.Count);
        for (var i = 0; i < all.Count; i++)
        {
            var settings = ((QuestionAnsweringState)batch.Items[i].State!).Settings;
            results.Add(settings.TopK == 1 && all[i].Count > 0
                ? ToJson(all[i][0])
                : new JsonArray(all[i].Select(a => (JsonNode)ToJson(a)).ToArray()));
        }
        return results;
    }

    private static JsonObject ToJson(QaAnswer a) => new() { ["answer"] = a.Answer, ["score"] = a.Score, ["start"] = a.Start, ["end"] = a.End };

    /// <summary>The answers of every item; <paramref name="topK"/> overrides the items' own top_k (the metric uses 1).</summary>
    internal IReadOnlyList<IReadOnlyList<QaAnswer>> DecodeAnswers(Tensor logits, HeadBatch batch, int? topK)
    {
        if (logits.ndim != 3 || logits.shape[0] != batch.RowCount || logits.shape[2] != 2)
            throw new ArgumentException($"logits must be [{batch.RowCount}, T, 2], got [{string.Join(", ", logits.shape)}]");
        var T = (int)logits.shape[1];
        float[] values;
        using (var cpu = logits.detach().to(ScalarType.Float32, CPU).contiguous()) values = cpu.data<float>().ToArray();
        var results = new List<IReadOnlyList<QaAnswer>>(batch.Items.Count);
        for (var i = 0; i < batch.Items.Count; i++)
        {
            var item = batch.Items[i];
            var state = item.State as QuestionAnsweringState ?? throw new ArgumentException($"batch item {i} was not encoded by a question-answering head");
            var starts = new List<ReadOnlyMemory<float>>();
            var ends = new List<ReadOnlyMemory<float>>();
            for (var j = 0; j < item.Sequences.Count; j++)
            {
                var row = batch.RowStarts[i] + j;
                var n = item.Sequences[j].Length;
                if (n > T) throw new ArgumentException($"batch item {i} window {j} has {n} tokens but the logits only {T}");
                var s = new float[n];
                var e = new float[n];
                for (var t = 0; t < n; t++)
                {
                    s[t] = values[(row * T + t) * 2];
                    e[t] = values[(row * T + t) * 2 + 1];
                }
                starts.Add(s);
                ends.Add(e);
            }
            var settings = topK is { } k ? state.Settings with { TopK = k } : state.Settings;
            results.Add(SpanDecoder.Decode(state.Context, item.Sequences, starts, ends, settings, Context.Tokenizer.ClsTokenId));
        }
        return results;
    }
}
