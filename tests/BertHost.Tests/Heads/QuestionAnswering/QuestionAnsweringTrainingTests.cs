using System.Text;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using static BertHost.Tests.Heads.QuestionAnswering.QaTestSupport;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Heads.QuestionAnswering;

public class QuestionAnsweringTrainingTests
{
    private static string Normalize(string s) => (string)Call("SquadScoring", "Normalize", s)!;
    private static double Em(string p, params string[] golds) => (double)Call("SquadScoring", "MaxExactMatch", p, (IReadOnlyList<string>)golds)!;
    private static double F1(string p, params string[] golds) => (double)Call("SquadScoring", "MaxF1", p, (IReadOnlyList<string>)golds)!;

    private static string Write(string name, string content)
    {
        var path = Path.Combine(TempFolder(), name);
        File.WriteAllText(path, content, new UTF8Encoding(false));
        return path;
    }

    private static string Squad(params (string Context, string Qas)[] paragraphs) =>
        $$"""{"version": "1.1", "data": [{"title": "t", "paragraphs": [{{string.Join(", ", paragraphs.Select(p => $$"""{"context": {{JsonValue.Create(p.Context).ToJsonString()}}, "qas": [{{p.Qas}}]}"""))}}]}]}""";

    private static string Qa(string id, string question, string context, params string[] answers) =>
        $$"""{"id": "{{id}}", "question": "{{question}}", "answers": [{{string.Join(", ", answers.Select(a => $$"""{"text": "{{a}}", "answer_start": {{context.IndexOf(a, StringComparison.Ordinal)}}}"""))}}]}""";

    private static (int[] Starts, int[] Ends, QaStateView State) Positions(HeadFeatures f)
    {
        var state = f.State!;
        var t = state.GetType();
        return ((int[])t.GetProperty("StartPositions")!.GetValue(state)!, (int[])t.GetProperty("EndPositions")!.GetValue(state)!,
            new QaStateView((IReadOnlyList<string>)t.GetProperty("GoldAnswers")!.GetValue(state)!, (string?)t.GetProperty("Id")!.GetValue(state)));
    }

    private sealed record QaStateView(IReadOnlyList<string> Golds, string? Id);

    [Theory]
    [InlineData("The Cat", "cat")]
    [InlineData("  the  quick,   brown fox! ", "quick brown fox")]
    [InlineData("An apple a day", "apple day")]
    [InlineData("theatre another", "theatre another")]            // articles only as whole words
    [InlineData("Denver Broncos' (AFC)", "denver broncos afc")]
    [InlineData("a-b_c", "abc")]                                   // string.punctuation includes - and _
    [InlineData("the a an", "")]
    [InlineData("São Paulo — “quoted”", "são paulo — “quoted”")]    // only ASCII punctuation is removed
    public void Normalisation_follows_the_official_SQuAD_script(string text, string normalized) =>
        Assert.Equal(normalized, Normalize(text));

    [Fact]
    public void Exact_match_and_F1_on_hand_worked_examples()
    {
        Assert.Equal(1, Em("The Denver Broncos!", "denver broncos"));
        Assert.Equal(0, Em("Denver", "denver broncos"));
        // F1: prediction "denver" vs gold "denver broncos": precision 1, recall 1/2 -> 2/3
        Assert.Equal(2.0 / 3, F1("Denver", "Denver Broncos"), 9);
        // "the broncos of denver" -> [broncos, of, denver] vs [denver, broncos]: same 2, p 2/3, r 1 -> 0.8
        Assert.Equal(0.8, F1("the broncos of denver", "Denver Broncos"), 9);
        // repeated tokens count once each (Counter intersection): [a.. ] "broncos broncos" vs "broncos": p 1/2, r 1 -> 2/3
        Assert.Equal(2.0 / 3, F1("broncos broncos", "broncos"), 9);
        // multiple gold answers: the maximum
        Assert.Equal(1, Em("Broncos", "Denver Broncos", "the Broncos"));
        Assert.Equal(1, F1("Broncos", "Denver Broncos", "the Broncos"));
        Assert.Equal(2.0 / 3, F1("Denver", "Denver Broncos", "Carolina Panthers"), 9);
        Assert.Equal(0, F1("Panthers", "Denver Broncos"));
        // empty prediction: 0 against an answer, 1 against no answer (SQuAD 2.0)
        Assert.Equal(0, F1("", "Denver Broncos"));
        Assert.Equal(0, Em("", "Denver Broncos"));
        Assert.Equal(1, F1(""));
        Assert.Equal(1, Em(""));
        Assert.Equal(0, F1("Denver"));
        // a gold that normalises to nothing counts as no answer
        Assert.Equal(1, Em("the", "a"));
    }

    [Fact]
    public void The_reader_maps_answer_characters_to_tokens_in_every_window()
    {
        using var head = Fresh();
        const string context = "he walked home with his dog.";
        var path = Write("train.json", Squad((context, string.Join(", ",
            Qa("q1", "who walked?", context, "he"),
            Qa("q2", "where?", context, "walked home", "home"),
            Qa("q3", "with what?", context, "his dog")))));
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList();
        Assert.Equal(3, examples.Count);
        var w = examples[1].Sequences[0];
        var (s, e, state) = Positions(examples[1]);
        Assert.Equal("w", w.Tokens[s[0]]);          // walked = w ##al ##k ##ed
        Assert.Equal("home", w.Tokens[e[0]]);
        Assert.Equal(["walked home", "home"], state.Golds);
        Assert.Equal("q2", state.Id);
        var (s3, e3, _) = Positions(examples[2]);
        Assert.Equal(("his", "dog"), (examples[2].Sequences[0].Tokens[s3[0]], examples[2].Sequences[0].Tokens[e3[0]]));
        var (s1, e1, _) = Positions(examples[0]);
        Assert.Equal(s1[0], e1[0]);
        Assert.Equal("he", examples[0].Sequences[0].Tokens[s1[0]]);
        Assert.Equal(["squad", "squad-jsonl"], head.Training.DataFormats);
    }

    [Fact]
    public void An_answer_in_a_later_window_is_found_there_and_the_other_windows_point_at_CLS()
    {
        using var head = Fresh();
        var words = "the city of new york is a large place with many people and a river".Split(' ');
        var context = string.Join(" ", Enumerable.Range(0, 200).Select(i => words[i % words.Length])) + " and a quick brown fox jumped.";
        var path = Write("long.json", Squad((context, Qa("late", "what jumped?", context, "quick brown fox"))));
        var f = head.Training!.ReadExamples(path, new TrainingDataOptions()).Single();
        Assert.True(f.Sequences.Count >= 5);
        var (starts, ends, _) = Positions(f);
        var answerAt = context.IndexOf("quick", StringComparison.Ordinal);
        for (var j = 0; j < f.Sequences.Count; j++)
        {
            var w = f.Sequences[j];
            var ctx = w.SequenceRange(1)!.Value;
            var holds = w.Offsets[ctx.Start].Start <= answerAt && w.Offsets[ctx.End - 1].End >= answerAt + "quick brown fox".Length;
            if (holds)
            {
                Assert.Equal("quick", w.Tokens[starts[j]]);
                Assert.Equal("fox", w.Tokens[ends[j]]);
                Assert.Equal(answerAt, w.Offsets[starts[j]].Start);
            }
            else Assert.Equal((0, 0), (starts[j], ends[j]));
        }
        Assert.Equal((0, 0), (starts[0], ends[0]));
        Assert.NotEqual(0, starts[^1]);
    }

    [Fact]
    public void Impossible_questions_point_at_CLS_and_score_against_the_empty_answer()
    {
        using var head = Fresh();
        const string context = "the cat sat on the mat.";
        var path = Write("v2.json", $$"""
            {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "{{context}}", "qas": [
              {"id": "no", "question": "who flew?", "answers": [], "is_impossible": true},
              {"id": "yes", "question": "who sat?", "answers": [{"text": "cat", "answer_start": 4}], "is_impossible": false}
            ]}]}]}
            """);
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList();
        var (s, e, state) = Positions(examples[0]);
        Assert.Equal((0, 0), (s[0], e[0]));
        Assert.Empty(state.Golds);

        // metric: CLS strongest in both -> "" predicted: right for "no", wrong for "yes"
        var batch = new HeadBatch(examples, CPU);
        using var logits = Logits(batch, v => { v[0, 0, 0] = v[0, 0, 1] = v[1, 0, 0] = v[1, 0, 1] = 10; });
        var metric = head.Training.CreateMetric();
        metric.Update(logits, batch);
        var m = metric.Compute();
        Assert.Equal("f1", metric.Primary);
        Assert.Equal(50, m["exact_match"], 9);
        Assert.Equal(50, m["f1"], 9);
        Assert.Equal(2, m["examples"]);
    }

    [Fact]
    public void The_metric_scores_the_best_span_against_every_gold_answer()
    {
        using var head = Fresh();
        const string context = "the denver broncos beat the carolina panthers.";
        var path = Write("dev.json", Squad((context, string.Join(", ",
            Qa("1", "who won?", context, "denver broncos", "broncos"),
            Qa("2", "who lost?", context, "carolina panthers")))));
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList();
        var batch = new HeadBatch(examples, CPU);
        var w0 = examples[0].Sequences[0];
        var w1 = examples[1].Sequences[0];
        using var logits = Logits(batch, v =>
        {
            v[0, Token(w0, context.IndexOf("broncos", StringComparison.Ordinal)), 0] = 8;   // "broncos": EM 1 via the 2nd gold
            v[0, Token(w0, context.IndexOf("broncos", StringComparison.Ordinal)), 1] = 8;
            v[1, Token(w1, context.IndexOf("the carolina", StringComparison.Ordinal)), 0] = 8; // "the carolina": EM 0, F1 2/3
            v[1, Token(w1, context.IndexOf("carolina", StringComparison.Ordinal)), 1] = 8;
        });
        var metric = head.Training.CreateMetric();
        metric.Update(logits, batch);
        var m = metric.Compute();
        Assert.Equal(50, m["exact_match"], 6);
        Assert.Equal(100 * (1 + 2.0 / 3) / 2, m["f1"], 6);
    }

    [Fact]
    public void The_loss_is_the_mean_of_start_and_end_cross_entropy_over_windows_without_padding()
    {
        using var head = Fresh();
        const string c1 = "the cat sat.";
        const string c2 = "the dog sat on the mat today.";
        var path = Write("loss.json", Squad((c1, Qa("a", "who?", c1, "cat")), (c2, Qa("b", "where?", c2, "the mat"))));
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList();
        var batch = new HeadBatch(examples, CPU);
        var (s0, e0, _) = Positions(examples[0]);
        var (s1, e1, _) = Positions(examples[1]);
        var rnd = new Random(5);
        var values = new float[2, examples[1].Sequences[0].Length, 2];
        for (var r = 0; r < 2; r++)
            for (var t = 0; t < values.GetLength(1); t++)
                for (var k = 0; k < 2; k++) values[r, t, k] = (float)(rnd.NextDouble() * 4 - 2);
        double Ce(int row, int channel, int gold)
        {
            var n = examples[row].Sequences[0].Length;   // padding excluded
            var z = Enumerable.Range(0, n).Select(t => (double)values[row, t, channel]).ToArray();
            return Math.Log(z.Sum(Math.Exp)) - z[gold];
        }
        var expected = ((Ce(0, 0, s0[0]) + Ce(0, 1, e0[0])) / 2 + (Ce(1, 0, s1[0]) + Ce(1, 1, e1[0])) / 2) / 2;
        using var logits = tensor(values);
        using var loss = head.Training.Loss(logits, batch);
        Assert.Equal(expected, loss.item<float>(), 4);
        Assert.True(examples[0].Sequences[0].Length < examples[1].Sequences[0].Length);
    }

    [Fact]
    public void The_jsonl_format_reads_hugging_face_datasets_rows()
    {
        using var head = Fresh();
        var path = Write("train.jsonl",
            """{"id": "x1", "title": "t", "context": "the cat sat.", "question": "who sat?", "answers": {"text": ["cat"], "answer_start": [4]}}""" + "\n" +
            """{"id": "x2", "title": "t", "context": "the cat sat.", "question": "who flew?", "answers": {"text": [], "answer_start": []}}""" + "\n");
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList();
        var (s, e, state) = Positions(examples[0]);
        Assert.Equal("cat", examples[0].Sequences[0].Tokens[s[0]]);
        Assert.Equal(s[0], e[0]);
        Assert.Equal("x1", state.Id);
        Assert.Equal((0, 0), (Positions(examples[1]).Starts[0], Positions(examples[1]).Ends[0]));
    }

    [Fact]
    public void Answer_start_counts_code_points_like_Python()
    {
        using var head = Fresh();
        const string context = "the 😀 cat sat.";   // the emoji is 1 code point, 2 UTF-16 units
        var path = Write("emoji.json", Squad((context, """{"id": "e", "question": "who?", "answers": [{"text": "cat", "answer_start": 6}]}""")));
        var f = head.Training!.ReadExamples(path, new TrainingDataOptions()).Single();
        var (s, _, _) = Positions(f);
        Assert.Equal("cat", f.Sequences[0].Tokens[s[0]]);
    }

    [Theory]
    [InlineData("""{"data": [}""", 1, "not valid JSON")]
    [InlineData("""{"version": "1.1"}""", 0, "\"data\" list")]
    [InlineData("""{"data": [{"paragraphs": [{"context": "the cat", "qas": [{"id": "q7", "question": "who?", "answers": [{"text": "dog", "answer_start": 4}]}]}]}]}""", 0, "question q7")]
    [InlineData("""{"data": [{"paragraphs": [{"context": "the cat", "qas": [{"id": "q8", "question": "who?", "answers": [{"text": "cat", "answer_start": 40}]}]}]}]}""", 0, "runs past the end")]
    [InlineData("""{"data": [{"paragraphs": [{"context": "the cat", "qas": [{"id": "q9", "question": "who?"}]}]}]}""", 0, "q9 (data[0].paragraphs[0].qas[0]): no answers")]
    [InlineData("""{"data": [{"paragraphs": [{"context": "the cat", "qas": [{"id": "q10", "answers": []}]}]}]}""", 0, "q10")]
    public void Malformed_SQuAD_files_name_the_file_and_the_question(string json, int line, string reason)
    {
        using var head = Fresh();
        var path = Write("bad.json", json);
        var e = Assert.Throws<TrainingDataException>(() => head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList());
        Assert.Equal(path, e.File);
        Assert.Equal(line, e.Line);
        Assert.Contains(reason, e.Reason);
    }

    [Fact]
    public void Malformed_questions_can_be_skipped()
    {
        using var head = Fresh();
        const string context = "the cat sat.";
        var path = Write("mixed.json", Squad((context, string.Join(", ",
            Qa("good", "who?", context, "cat"),
            """{"id": "bad", "question": "who?", "answers": [{"text": "dog", "answer_start": 0}]}"""))));
        var skipped = new List<string>();
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions
        {
            SkipMalformed = true, SkippedRecords = (_, _, reason) => skipped.Add(reason),
        }).ToList();
        Assert.Single(examples);
        Assert.Single(skipped);
        Assert.Contains("question bad", skipped[0]);
        Assert.Contains("not the answer 'dog'", skipped[0]);
    }
}
