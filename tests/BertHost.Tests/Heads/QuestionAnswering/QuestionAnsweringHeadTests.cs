using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Checkpoints;
using Microsoft.Extensions.Logging.Abstractions;
using static BertHost.Tests.Heads.QuestionAnswering.QaTestSupport;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Heads.QuestionAnswering;

public class QuestionAnsweringHeadTests
{
    private const string Cat = "the cat sat on the mat.";   // context tokens: the cat sat on the mat .

    private static Dictionary<string, Tensor> Parameters(IHead head) =>
        head.Module.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    private static (HeadBatch Batch, HeadFeatures Features) One(IHead head, string question, string context, string parameters = "{}")
    {
        var f = Encode(head, question, context, parameters);
        return (new HeadBatch([f], CPU), f);
    }

    private static JsonNode DecodeOne(IHead head, HeadBatch batch, Action<float[,,]> set, float fill = 0f)
    {
        using var logits = Logits(batch, set, fill);
        return head.Decode(logits, batch)[0];
    }

    [Fact]
    public void A_fresh_head_has_HF_names_seeded_normal_weights_and_no_labels()
    {
        using var head = Fresh();
        var p = Parameters(head);
        Assert.Equal(["qa_outputs.bias", "qa_outputs.weight"], p.Keys.Order());
        Assert.Equal([2L, 32L], p["qa_outputs.weight"].shape);
        Assert.Equal(0.0, p["qa_outputs.bias"].abs().sum().item<float>());
        Assert.InRange(p["qa_outputs.weight"].std().item<float>(), 0.01, 0.03);
        Assert.Empty(head.Labels);
        Assert.Equal(KindName, head.Kind);
        Assert.Null(head.TrainedOnFingerprint);
        var describe = head.Describe();
        Assert.Equal(64, (int)describe["max_length"]!);
        Assert.Equal(32, (int)describe["doc_stride"]!);   // min(64 / 2, 128), as the pipeline

        using var same = Fresh();
        using var other = Fresh(seed: 7);
        Assert.True(Parameters(same)["qa_outputs.weight"].eq(p["qa_outputs.weight"]).all().item<bool>());
        Assert.False(Parameters(other)["qa_outputs.weight"].eq(p["qa_outputs.weight"]).all().item<bool>());
    }

    [Fact]
    public void Only_context_tokens_can_be_answers_and_CLS_takes_part_in_the_softmax()
    {
        using var head = Fresh();
        var (batch, f) = One(head, "where is the cat?", Cat);
        var w = f.Sequences[0];
        var question = w.SequenceRange(0)!.Value;
        var sep = w.Length - 1;
        var mat = Token(w, Cat.IndexOf("mat", StringComparison.Ordinal));
        var r = DecodeOne(head, batch, v =>
        {
            for (var t = question.Start; t < question.End; t++) v[0, t, 0] = v[0, t, 1] = 50;   // the question: masked
            v[0, sep, 0] = v[0, sep, 1] = 50;                                                    // [SEP]: masked
            v[0, mat, 0] = v[0, mat, 1] = 5;
        });
        Assert.Equal("mat", (string)r["answer"]!);
        Assert.Equal(Cat.IndexOf("mat", StringComparison.Ordinal), (int)r["start"]!);
        Assert.Equal((int)r["start"]! + 3, (int)r["end"]!);
        // softmax over [CLS] + 7 context tokens, all logits 0 but "mat"
        var p = Math.Exp(5) / (Math.Exp(5) + 7);
        Assert.Equal(p * p, (double)r["score"]!, 6);
    }

    [Fact]
    public void Spans_longer_than_max_answer_len_are_not_candidates()
    {
        using var head = Fresh();
        void Set(HeadFeatures f, float[,,] v)
        {
            var ctx = f.Sequences[0].SequenceRange(1)!.Value;
            v[0, ctx.Start, 0] = 6;       // start: "the"
            v[0, ctx.End - 1, 1] = 5;     // end: "."
        }
        var (batch, f) = One(head, "what sat?", Cat);
        var whole = DecodeOne(head, batch, v => Set(f, v));
        Assert.Equal(Cat, (string)whole["answer"]!);
        Assert.Equal(0, (int)whole["start"]!);
        Assert.Equal(Cat.Length, (int)whole["end"]!);

        // 7 tokens > 3: the best allowed span keeps the strong start and the first of the equal ends
        var (batch3, f3) = One(head, "what sat?", Cat, """{"max_answer_len": 3}""");
        var short3 = DecodeOne(head, batch3, v => Set(f3, v));
        Assert.Equal("the", (string)short3["answer"]!);
        Assert.Equal((0, 3), ((int)short3["start"]!, (int)short3["end"]!));
    }

    [Fact]
    public void Top_k_answers_are_a_list_sorted_by_score()
    {
        using var head = Fresh();
        var (batch, f) = One(head, "who?", Cat, """{"top_k": 3}""");
        var w = f.Sequences[0];
        var cat = Token(w, 4);
        var mat = Token(w, 19);
        Action<float[,,]> set = v =>
        {
            v[0, cat, 0] = v[0, cat, 1] = 3;
            v[0, mat, 0] = v[0, mat, 1] = 2;
        };
        var list = DecodeOne(head, batch, set).AsArray();
        Assert.Equal(["cat", "cat sat on the mat", "mat"], list.Select(a => (string)a!["answer"]!));
        Assert.Equal([4, 4, 19], list.Select(a => (int)a!["start"]!));
        Assert.Equal([7, 22, 22], list.Select(a => (int)a!["end"]!));
        var scores = list.Select(a => (double)a!["score"]!).ToList();
        Assert.Equal(scores.OrderByDescending(s => s), scores);

        var (batch1, _) = One(head, "who?", Cat);
        var single = DecodeOne(head, batch1, set);
        Assert.IsType<JsonObject>(single);
        Assert.Equal("cat", (string)single["answer"]!);
        Assert.Equal(scores[0], (double)single["score"]!, 9);
    }

    [Fact]
    public void Answers_extend_to_whole_words_unless_align_to_words_is_false()
    {
        using var head = Fresh();
        const string context = "he walked home.";   // walked = w ##al ##k ##ed
        var (batch, f) = One(head, "who?", context);
        var w = f.Sequences[0];
        Assert.Equal(["w", "##al", "##k", "##ed"], Enumerable.Range(Token(w, 3), 4).Select(t => w.Tokens[t]));
        Action<float[,,]> set = v =>
        {
            v[0, Token(w, 3) + 1, 0] = 6;   // start "##al"
            v[0, Token(w, 3) + 2, 1] = 6;   // end "##k"
        };
        var aligned = DecodeOne(head, batch, set);
        Assert.Equal(("walked", 3, 9), ((string)aligned["answer"]!, (int)aligned["start"]!, (int)aligned["end"]!));

        var (raw, _) = One(head, "who?", context, """{"align_to_words": false}""");
        var pieces = DecodeOne(head, raw, set);
        Assert.Equal(("alk", 4, 7), ((string)pieces["answer"]!, (int)pieces["start"]!, (int)pieces["end"]!));
    }

    [Fact]
    public void The_null_answer_competes_only_with_handle_impossible_answer()
    {
        using var head = Fresh();
        Action<float[,,]> set = v => { v[0, 0, 0] = v[0, 0, 1] = 10; };   // [CLS]
        var (plain, _) = One(head, "who?", Cat);
        var answer = DecodeOne(head, plain, set);
        Assert.NotEqual("", (string)answer["answer"]!);

        var (impossible, f) = One(head, "who?", Cat, """{"handle_impossible_answer": true, "top_k": 2}""");
        var list = DecodeOne(head, impossible, set).AsArray();
        Assert.Equal(("", 0, 0), ((string)list[0]!["answer"]!, (int)list[0]!["start"]!, (int)list[0]!["end"]!));
        var p = Math.Exp(10) / (Math.Exp(10) + 7);
        Assert.Equal(p * p, (double)list[0]!["score"]!, 6);
        Assert.NotEqual("", (string)list[1]!["answer"]!);

        // a head whose options say so handles impossible answers without the parameter
        using var squad2 = Fresh("""{"handle_impossible_answer": true}""");
        var (b2, _) = One(squad2, "who?", Cat);
        Assert.Equal("", (string)DecodeOne(squad2, b2, set)["answer"]!);
    }

    private static string LongContext(out int foxAt)
    {
        // ~300 tokens; "fox" appears once, near the end
        var words = "the city of new york is a large place with many people and a river".Split(' ');
        var parts = new List<string>();
        for (var i = 0; i < 280; i++) parts.Add(words[i % words.Length]);
        parts.Add("and a quick brown fox");
        for (var i = 0; i < 10; i++) parts.Add(words[i]);
        var context = string.Join(" ", parts) + ".";
        foxAt = context.IndexOf("fox", StringComparison.Ordinal);
        Assert.Equal(foxAt, context.LastIndexOf("fox", StringComparison.Ordinal));
        return context;
    }

    [Fact]
    public void A_long_context_becomes_overlapping_windows_that_cover_it()
    {
        using var head = Fresh();
        var context = LongContext(out _);
        var f = Encode(head, "what jumped?", context);
        Assert.True(f.Sequences.Count >= 8, $"{f.Sequences.Count} windows");
        var question = f.Sequences[0].SequenceRange(0)!.Value;
        var budget = 64 - 3 - (question.End - question.Start);
        var covered = new HashSet<(int, int)>();
        for (var j = 0; j < f.Sequences.Count; j++)
        {
            var w = f.Sequences[j];
            Assert.Equal(j, w.WindowIndex);
            Assert.True(w.Length <= 64);
            Assert.Equal(f.Sequences[0].InputIds.Take(question.End + 1), w.InputIds.Take(question.End + 1));   // [CLS] question [SEP]
            var ctx = w.SequenceRange(1)!.Value;
            foreach (var t in Enumerable.Range(ctx.Start, ctx.End - ctx.Start)) covered.Add(w.Offsets[t]);
            if (j + 1 < f.Sequences.Count)
            {
                Assert.Equal(budget, ctx.End - ctx.Start);
                // the next window starts doc_stride (32) tokens before this one ends
                var next = f.Sequences[j + 1];
                Assert.Equal(w.Offsets[ctx.End - 32], next.Offsets[next.SequenceRange(1)!.Value.Start]);
            }
        }
        var all = Encode(head, "what jumped?", context, """{"max_seq_len": 64}""");
        Assert.Equal(f.Sequences.Count, all.Sequences.Count);
        Assert.Equal(covered.Count, covered.Select(o => o.Item1).Distinct().Count());
        Assert.Equal(0, covered.Min(o => o.Item1));
        Assert.Equal(context.Length, covered.Max(o => o.Item2));
    }

    [Fact]
    public void An_answer_found_in_a_later_window_has_offsets_into_the_original_context()
    {
        using var head = Fresh();
        var context = LongContext(out var foxAt);
        var f = Encode(head, "what jumped?", context, """{"top_k": 2}""");
        var batch = new HeadBatch([f], CPU);
        var holding = f.Sequences.Where(w => w.CharToToken(foxAt, 1) is not null).ToList();
        Assert.DoesNotContain(f.Sequences[0], holding);
        Assert.True(holding.Count >= 2, "the stride makes neighbouring windows share the answer");
        var last = holding[^1];
        using var logits = Logits(batch, v =>
        {
            foreach (var w in holding)
            {
                var t = Token(w, foxAt);
                // the last window that holds it says "brown fox" (then "fox"); the earlier ones say "fox", weakly
                var strong = w == last;
                v[w.WindowIndex, t, 0] = strong ? 8 : 3;
                v[w.WindowIndex, t, 1] = strong ? 8 : 3;
                if (strong) v[w.WindowIndex, t - 1, 0] = 9;
            }
        });
        var list = head.Decode(logits, batch)[0].AsArray();
        Assert.Equal("brown fox", (string)list[0]!["answer"]!);
        Assert.Equal(foxAt - "brown ".Length, (int)list[0]!["start"]!);
        Assert.Equal(foxAt + 3, (int)list[0]!["end"]!);
        Assert.Equal("fox", (string)list[1]!["answer"]!);
        Assert.Equal((foxAt, foxAt + 3), ((int)list[1]!["start"]!, (int)list[1]!["end"]!));
        Assert.Equal(context[(int)list[0]!["start"]!..(int)list[0]!["end"]!], (string)list[0]!["answer"]!);
    }

    [Fact]
    public void The_null_score_is_the_minimum_over_the_windows()
    {
        using var head = Fresh();
        var context = LongContext(out var foxAt);
        var f = Encode(head, "what jumped?", context, """{"handle_impossible_answer": true}""");
        var batch = new HeadBatch([f], CPU);
        var holding = f.Sequences.First(w => w.CharToToken(foxAt, 1) is not null);
        JsonNode Decode(bool everyWindowSaysNull)
        {
            using var logits = Logits(batch, v =>
            {
                foreach (var w in f.Sequences)
                    if (everyWindowSaysNull || w != holding) v[w.WindowIndex, 0, 0] = v[w.WindowIndex, 0, 1] = 12;
                var t = Token(holding, foxAt);
                v[holding.WindowIndex, t, 0] = v[holding.WindowIndex, t, 1] = 6;
            });
            return head.Decode(logits, batch)[0];
        }
        Assert.Equal("", (string)Decode(everyWindowSaysNull: true)["answer"]!);
        Assert.Equal("fox", (string)Decode(everyWindowSaysNull: false)["answer"]!);
    }

    [Fact]
    public void The_real_body_and_head_answer_a_long_context_with_a_slice_of_it()
    {
        using var head = Fresh();
        var context = LongContext(out _);
        var r = Predict(TinyBert, head, Json("""{"top_k": 3}"""), Input("what jumped?", context), Input("who sat?", Cat));
        foreach (var (answers, ctx) in new[] { (r[0].AsArray(), context), (r[1].AsArray(), Cat) })
        {
            Assert.Equal(3, answers.Count);
            foreach (var a in answers)
                Assert.Equal(ctx[(int)a!["start"]!..(int)a["end"]!], (string)a["answer"]!);
        }
    }

    [Theory]
    [InlineData("\"just a string\"", "question", "must be an object")]
    [InlineData("""{"context": "the cat"}""", "question", "question is missing")]
    [InlineData("""{"question": "who?"}""", "context", "context is missing")]
    [InlineData("""{"question": "", "context": "the cat"}""", "question", "question is empty")]
    [InlineData("""{"question": "who?", "context": 3}""", "context", "context must be a string, got the number 3")]
    [InlineData("""{"question": "who?", "context": "x", "text": "y"}""", "text", "unknown input field 'text'")]
    public void Bad_inputs_name_their_field(string input, string field, string message)
    {
        using var head = Fresh();
        var e = Assert.Throws<HeadInputException>(() => head.Encode(Json(input), NoParameters));
        Assert.Equal(field, e.Field);
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("""{"top_k": 0}""", "parameters.top_k")]
    [InlineData("""{"max_answer_len": "long"}""", "parameters.max_answer_len")]
    [InlineData("""{"doc_stride": -1}""", "parameters.doc_stride")]
    [InlineData("""{"handle_impossible_answer": 1}""", "parameters.handle_impossible_answer")]
    public void Bad_parameters_name_their_field(string parameters, string field)
    {
        using var head = Fresh();
        var e = Assert.Throws<HeadInputException>(() => head.Encode(Json(Input("who?", Cat)), Json(parameters)));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void Long_questions_are_cut_to_max_question_len_and_must_leave_room_for_the_context()
    {
        using var head = Fresh();
        var question = string.Join(" ", Enumerable.Repeat("the", 70)) + "?";
        // 71 tokens, cut to max_question_len 64: with 64 tokens per window no context token fits
        var e = Assert.Throws<HeadInputException>(() => Encode(head, question, Cat));
        Assert.Equal("question", e.Field);
        Assert.Contains("the question is 64 tokens", e.Message);

        var f = Encode(head, question, Cat, """{"max_question_len": 20}""");
        var w = f.Sequences[0];
        Assert.Equal((1, 21), w.SequenceRange(0));
        Assert.Single(f.Sequences);
        Assert.Equal(7, w.SequenceRange(1)!.Value.End - w.SequenceRange(1)!.Value.Start);

        // a question that leaves fewer context tokens than doc_stride: the stride is capped, windows still advance
        var q40 = string.Join(" ", Enumerable.Repeat("the", 40));
        var windows = Encode(head, q40, LongContext(out _)).Sequences;
        Assert.True(windows.Count > 10);
        Assert.All(windows, x => Assert.True(x.Length <= 64));
    }

    [Fact]
    public void A_deployment_that_refuses_oversized_inputs_refuses_contexts_needing_several_windows()
    {
        var body = TinyBert;
        var c = Context(body, kind: KindName);
        var refusing = new HeadContext
        {
            Name = c.Name, Kind = c.Kind, Options = c.Options, Body = c.Body, Tokenizer = c.Tokenizer, Checkpoints = c.Checkpoints,
            Logger = NullLogger.Instance, TruncateOversized = false,
        };
        using var head = QaKind.CreateHead(refusing);
        Assert.Single(Encode(head, "who?", Cat).Sequences);
        var e = Assert.Throws<HeadInputException>(() => Encode(head, "who?", LongContext(out _)));
        Assert.Equal("context", e.Field);
        Assert.Contains("windows", e.Message);
    }

    [Theory]
    [InlineData("""{"pooling": "cls"}""", "options.pooling")]
    [InlineData("""{"max_answer_len": 0}""", "options.max_answer_len")]
    [InlineData("""{"dropout": 1.5}""", "options.dropout")]
    [InlineData("""{"handle_impossible_answer": "yes"}""", "options.handle_impossible_answer")]
    public void Bad_options_name_their_key(string options, string field)
    {
        var e = Assert.Throws<HeadConfigurationException>(() => Fresh(options));
        Assert.Equal(field, e.Field);
    }

    [Fact]
    public void Labels_are_refused()
    {
        var e = Assert.Throws<HeadConfigurationException>(() =>
            QaKind.CreateHead(Context(TinyBert, kind: KindName, labels: ["a", "b"])));
        Assert.Equal("labels", e.Field);
    }

    [Fact]
    public void A_saved_head_folder_loads_back_with_the_same_weights_and_options()
    {
        using var head = Fresh("""{"max_answer_len": 4, "doc_stride": 16}""", seed: 3);
        var folder = TempFolder();
        head.Save(folder, new HeadSaveInfo(TinyBert.Fingerprint, new Dictionary<string, double> { ["f1"] = 50 }));
        Assert.Equal(TinyBert.Fingerprint, head.TrainedOnFingerprint);
        Assert.True(File.Exists(Path.Combine(folder, "head.safetensors")));
        var manifest = HeadManifest.Read(Path.Combine(folder, "head.json"));
        Assert.Equal(KindName, manifest.Kind);
        Assert.Empty(manifest.Labels);
        Assert.Equal(4, (int)manifest.Options["max_answer_len"]!);
        Assert.Equal(["qa_outputs.bias", "qa_outputs.weight"], new CheckpointStore().ListTensors(Path.Combine(folder, "head.safetensors")).Order());

        using var loaded = QaKind.CreateHead(Context(TinyBert, kind: KindName, weights: folder));
        Assert.Equal("head-folder", (string)loaded.Describe()["weights"]!);
        Assert.Equal(16, (int)loaded.Describe()["doc_stride"]!);
        Assert.Equal(4, (int)loaded.Describe()["options"]!["max_answer_len"]!);
        Assert.Equal(TinyBert.Fingerprint, loaded.TrainedOnFingerprint);
        Assert.True(Parameters(loaded)["qa_outputs.weight"].eq(Parameters(head)["qa_outputs.weight"]).all().item<bool>());

        // the configuration overrides saved options
        using var overridden = QaKind.CreateHead(Context(TinyBert, kind: KindName, weights: folder, options: """{"max_answer_len": 9}"""));
        Assert.Equal(9, (int)overridden.Describe()["options"]!["max_answer_len"]!);

        var e = Assert.Throws<HeadConfigurationException>(() =>
            TextClassification.CreateHead(Context(TinyBert, labels: ["a", "b"], weights: folder)));
        Assert.Equal("weights", e.Field);
    }
}
