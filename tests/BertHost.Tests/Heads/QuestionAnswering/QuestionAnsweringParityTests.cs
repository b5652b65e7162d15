using BertHost.Core.Bert;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Abstractions.Heads;
using BertHost.Core.Checkpoints;
using BertHost.Tests.Support;
using static BertHost.Tests.Heads.QuestionAnswering.QaTestSupport;
using static BertHost.Tests.Plugins.HeadTestSupport;
using BertHost.Core.Body;

namespace BertHost.Tests.Heads.QuestionAnswering;

/// <summary>An imported Hugging Face BertForQuestionAnswering against the Python port of the pipeline (make_qa_fixtures.py).</summary>
public class QuestionAnsweringParityTests
{
    private static JsonElement Expected()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("models", "tiny-bert-qa.expected.json")));
        return doc.RootElement.Clone();
    }

    [Fact]
    public void An_imported_BertForQuestionAnswering_gives_the_pipelines_answers_offsets_and_scores()
    {
        var body = QaBody;
        using var head = Imported();
        Assert.Empty(head.Labels);
        Assert.Equal(body.Fingerprint, head.TrainedOnFingerprint);
        Assert.Equal("huggingface", (string)head.Describe()["weights"]!);
        var expected = Expected();
        Assert.Equal(expected.GetProperty("doc_stride").GetInt32(), (int)head.Describe()["doc_stride"]!);

        var cases = expected.GetProperty("cases").EnumerateArray().ToList();
        var features = cases.Select(c => Encode(head, c.GetProperty("question").GetString()!, c.GetProperty("context").GetString()!,
            c.GetProperty("parameters").GetRawText())).ToList();
        for (var i = 0; i < cases.Count; i++)
        {
            var windows = cases[i].GetProperty("windows").EnumerateArray().ToList();
            Assert.Equal(windows.Count, features[i].Sequences.Count);
            for (var w = 0; w < windows.Count; w++)
            {
                Assert.Equal(windows[w].GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()), features[i].Sequences[w].InputIds);
                Assert.Equal(windows[w].GetProperty("token_type_ids").EnumerateArray().Select(e => e.GetInt32()), features[i].Sequences[w].TokenTypeIds);
            }
        }
        Assert.Contains(features, f => f.Sequences.Count >= 3);   // the long case spans several windows

        // One padded batch of every case (windows of different lengths): padding must not change any answer.
        var (batch, logits) = Run(body, head, features);
        using (logits)
        {
            var results = head.Decode(logits, batch);
            for (var i = 0; i < cases.Count; i++)
            {
                var want = cases[i].GetProperty("answers").EnumerateArray().ToList();
                var topK = cases[i].GetProperty("parameters").TryGetProperty("top_k", out var k) ? k.GetInt32() : 1;
                var got = topK == 1 ? [results[i]] : results[i].AsArray().Select(n => n!).ToList();
                Assert.Equal(want.Count, got.Count);
                for (var j = 0; j < want.Count; j++)
                {
                    var label = $"case {i} ({cases[i].GetProperty("question").GetString()}) answer {j}";
                    Assert.True(want[j].GetProperty("answer").GetString() == (string)got[j]["answer"]!, $"{label}: '{got[j]["answer"]}' vs '{want[j].GetProperty("answer").GetString()}'");
                    Assert.Equal(want[j].GetProperty("start").GetInt32(), (int)got[j]["start"]!);
                    Assert.Equal(want[j].GetProperty("end").GetInt32(), (int)got[j]["end"]!);
                    var score = (double)got[j]["score"]!;
                    Assert.True(Math.Abs(want[j].GetProperty("score").GetDouble() - score) < 1e-4, $"{label}: score {score} vs {want[j].GetProperty("score").GetDouble()}");
                }
            }
            // the fixture covers a null answer winning, and a word made of several word pieces
            Assert.Contains(results, r => r is JsonObject o && (string)o["answer"]! == "" && (int)o["start"]! == 0 && (int)o["end"]! == 0);
            Assert.Contains(results, r => r is JsonObject o && (string)o["answer"]! == "walked");
        }
    }

    [Fact]
    public void Each_window_alone_gives_the_same_logits_as_in_the_padded_batch()
    {
        using var head = Imported();
        var f = Encode(head, "which team won the game?", Expected().GetProperty("cases").EnumerateArray().Last().GetProperty("context").GetString()!);
        var (batch, logits) = Run(QaBody, head, [f]);
        using (logits)
        {
            for (var w = 0; w < f.Sequences.Count; w++)
            {
                var single = new HeadFeatures { Sequences = [f.Sequences[w]], State = f.State };
                var (_, alone) = Run(QaBody, head, [single]);
                using (alone)
                {
                    var n = f.Sequences[w].Length;
                    using var inBatch = logits[w].narrow(0, 0, n);
                    Assert.True(inBatch.allclose(alone[0], rtol: 0, atol: 1e-4), $"window {w}");
                }
            }
        }
    }

    [Fact]
    public void A_task_model_without_pooler_is_matched_on_the_encoder_so_it_serves_on_the_same_body_with_a_pooler()
    {
        // tiny-bert has a pooler, tiny-bert-qa (like every BertForQuestionAnswering) has none, and the same encoder.
        using var head = QaKind.CreateHead(Context(TinyBert, kind: KindName, weights: QaFolder));
        Assert.Equal(TinyBert.Fingerprint, head.TrainedOnFingerprint);
    }

    [Fact]
    public void A_task_model_on_a_body_with_other_weights_is_refused_with_both_fingerprints()
    {
        using var other = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert-seqcls-other"));
        var e = Assert.Throws<HeadConfigurationException>(() => QaKind.CreateHead(Context(other, kind: KindName, weights: QaFolder)));
        Assert.Equal("weights", e.Field);
        Assert.Contains($"{QaFolder} was fine-tuned on another body", e.Message);
        Assert.Contains(new CheckpointStore().BodyFingerprint(QaFolder, encoderOnly: true), e.Message);
        Assert.Contains($"the served body is {other.EncoderFingerprint}", e.Message);
    }

    [Fact]
    public void A_folder_of_another_architecture_is_refused()
    {
        var seqcls = ReferenceOutputs.ModelFolder("tiny-bert-seqcls");
        var e = Assert.Throws<HeadConfigurationException>(() => QaKind.CreateHead(Context(TinyBert, kind: KindName, weights: seqcls)));
        Assert.Equal("weights", e.Field);
        Assert.Contains("BertForSequenceClassification", e.Message);
        Assert.Contains("not a BertForQuestionAnswering", e.Message);
    }
}
