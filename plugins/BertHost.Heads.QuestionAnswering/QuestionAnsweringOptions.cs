using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;

namespace BertHost.Heads.QuestionAnswering;

/// <summary>
/// The <c>options:</c> of a question-answering head. Every key is optional:
/// <list type="bullet">
/// <item><c>max_length</c>: tokens per window (question + context + 3 specials); default and upper bound the body's limit
/// (the pipeline's <c>max_seq_len</c>)</item>
/// <item><c>doc_stride</c>: context tokens shared by consecutive windows; default min(max_length / 2, 128) as the pipeline</item>
/// <item><c>max_answer_len</c>: longest answer in tokens (default 15)</item>
/// <item><c>max_question_len</c>: question tokens kept (default 64)</item>
/// <item><c>handle_impossible_answer</c>: default of the request parameter (default false; true for SQuAD 2.0 heads)</item>
/// <item><c>dropout</c>: before qa_outputs while training (default 0: BertForQuestionAnswering has none of its own)</item>
/// </list>
/// Each of doc_stride, max_answer_len, max_question_len and handle_impossible_answer can also be given per request.
/// </summary>
public sealed record QuestionAnsweringOptions
{
    public static IReadOnlyList<string> Keys { get; } =
        ["max_length", "doc_stride", "max_answer_len", "max_question_len", "handle_impossible_answer", "dropout"];

    public int? MaxLength { get; init; }
    public int? DocStride { get; init; }
    public int MaxAnswerLen { get; init; } = 15;
    public int MaxQuestionLen { get; init; } = 64;
    public bool HandleImpossibleAnswer { get; init; }
    public double Dropout { get; init; }

    public static QuestionAnsweringOptions Parse(JsonElement options)
    {
        if (!HeadOptions.Check(options, Keys, "a question-answering head")) return new QuestionAnsweringOptions();
        var result = new QuestionAnsweringOptions();
        foreach (var p in options.EnumerateObject())
        {
            var field = "options." + p.Name;
            Exception Error(string m) => new HeadConfigurationException(field, m);
            result = p.Name switch
            {
                "max_length" => result with { MaxLength = HeadOptions.Int(field, p.Value, 8, Error) },
                "doc_stride" => result with { DocStride = HeadOptions.Int(field, p.Value, 0, Error) },
                "max_answer_len" => result with { MaxAnswerLen = HeadOptions.Int(field, p.Value, 1, Error) },
                "max_question_len" => result with { MaxQuestionLen = HeadOptions.Int(field, p.Value, 1, Error) },
                "handle_impossible_answer" => result with { HandleImpossibleAnswer = HeadOptions.Bool(field, p.Value, Error) },
                "dropout" => result with { Dropout = HeadOptions.Probability(field, p.Value, Error) },
                _ => result,
            };
        }
        return result;
    }

    /// <summary>The options with every key explicit (what head.json records).</summary>
    public JsonObject ToJson(int maxLength, int docStride) => new()
    {
        ["max_length"] = maxLength,
        ["doc_stride"] = docStride,
        ["max_answer_len"] = MaxAnswerLen,
        ["max_question_len"] = MaxQuestionLen,
        ["handle_impossible_answer"] = HandleImpossibleAnswer,
        ["dropout"] = Dropout,
    };
}
