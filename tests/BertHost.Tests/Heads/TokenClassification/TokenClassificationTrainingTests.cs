using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using BertHost.Tests.Support;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static BertHost.Tests.Heads.TokenClassification.TokenClassificationSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Heads.TokenClassification;

public class TokenClassificationTrainingTests
{
    private static readonly string[] Conll9 = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"];

    /// <summary>The plugin's training state, read by reflection (the tests never reference the plugin).</summary>
    private static int[][] TokenLabels(HeadFeatures f) => (int[][])f.State!.GetType().GetProperty("TokenLabels")!.GetValue(f.State)!;
    private static int[] WordTags(HeadFeatures f) => (int[])f.State!.GetType().GetProperty("WordTags")!.GetValue(f.State)!;

    private static List<HeadFeatures> Read(IHead head, string path, TrainingDataOptions? options = null) =>
        head.Training!.ReadExamples(path, options ?? new TrainingDataOptions()).ToList();

    [Fact]
    public void Conll_sentences_label_the_first_sub_token_of_each_word()
    {
        using var head = FreshNer();
        var path = Write("small.conll", "-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nplaying VBG B-VP O\nin IN B-PP O\nNew NNP B-NP B-LOC\nYork NNP I-NP I-LOC\n\n\nthe DT O O\nman NN O O\n");
        var examples = Read(head, path);
        Assert.Equal(2, examples.Count);
        var s = Assert.Single(examples[0].Sequences);
        Assert.Equal(["[CLS]", "john", "play", "##ing", "in", "new", "york", "[SEP]"], s.Tokens);
        Assert.Equal([-100, 1, 0, -100, 0, 3, 4, -100], TokenLabels(examples[0])[0]);
        Assert.Equal([1, 0, 0, 3, 4], WordTags(examples[0]));
        Assert.Equal([0, 0], WordTags(examples[1]));
        Assert.Equal(["conll", "jsonl"], head.Training!.DataFormats);
    }

    [Fact]
    public void A_sentence_longer_than_a_window_is_split_and_each_word_labelled_once()
    {
        using var head = FreshNer(options: """{"max_length": 12, "stride": 2}""");
        var words = Enumerable.Range(0, 25).Select(i => i % 5 == 0 ? "John" : "playing").ToList();
        var path = Write("long.jsonl", System.Text.Json.JsonSerializer.Serialize(new { tokens = words, tags = words.Select(w => w == "John" ? "B-PER" : "O") }) + "\n");
        var f = Assert.Single(Read(head, path));
        Assert.True(f.Sequences.Count > 3);
        var labels = TokenLabels(f);
        var labelled = f.Sequences.SelectMany((s, w) => Enumerable.Range(0, s.Length).Where(p => labels[w][p] >= 0).Select(p => (Word: s.WordIds[p]!.Value, Label: labels[w][p], Token: s.Tokens[p]))).ToList();
        Assert.Equal(Enumerable.Range(0, 25), labelled.Select(l => l.Word).Order());
        Assert.All(labelled, l => Assert.Equal(l.Word % 5 == 0 ? 1 : 0, l.Label));
        Assert.All(labelled, l => Assert.False(l.Token.StartsWith("##")));
    }

    [Fact]
    public void Tags_are_converted_to_the_heads_scheme()
    {
        const string iob1 = "John I-PER\nMan I-PER\nNew B-PER\nYork I-LOC\n";
        using var bio = FreshNer();
        Assert.Equal([1, 2, 1, 3], WordTags(Read(bio, Write("iob1.conll", iob1)).Single()));
        using var iob1Head = FreshNer(options: """{"scheme": "iob1"}""");
        Assert.Equal([2, 2, 1, 4], WordTags(Read(iob1Head, Write("iob1.conll", iob1)).Single()));
        Assert.Equal([2, 2, 1, 4], WordTags(Read(iob1Head, Write("iob2.conll", "John B-PER\nMan I-PER\nNew B-PER\nYork B-LOC\n")).Single()));
    }

    [Theory]
    [InlineData("a.conll", "John B-PER\nwent O\n\nto B-ORG\n", 4, "tag 'B-ORG' is not one of the head's labels")]
    [InlineData("a.conll", "John B-PER\nwent\n", 2, "has one column")]
    [InlineData("a.jsonl", "{\"tokens\": [\"a\"], \"tags\": [\"O\"]}\n{\"tokens\": [\"a\", \"b\"], \"tags\": [\"O\"]}\n", 2, "2 tokens but 1 tags")]
    [InlineData("a.jsonl", "{\"tokens\": [\"a\"], \"tags\": [7]}\n", 1, "tag 7 is neither a label name nor an index")]
    [InlineData("a.jsonl", "{\"tokens\": [\"a\"]\n", 1, "not valid JSON")]
    [InlineData("a.jsonl", "{\"tags\": [\"O\"]}\n", 1, "tokens must be a list")]
    public void Malformed_records_name_file_and_line(string name, string content, int line, string reason)
    {
        using var head = FreshNer();
        var path = Write(name, content);
        var e = Assert.Throws<TrainingDataException>(() => Read(head, path));
        Assert.Equal(path, e.File);
        Assert.Equal(line, e.Line);
        Assert.Contains(reason, e.Reason);
    }

    [Fact]
    public void Malformed_records_can_be_skipped_and_jsonl_takes_names_or_indices()
    {
        using var head = FreshNer();
        var path = Write("mixed.jsonl", "{\"tokens\": [\"John\"], \"tags\": [\"B-PER\"]}\n{\"tokens\": [\"x\"], \"tags\": [\"B-ORG\"]}\n{\"id\": 3, \"tokens\": [\"New\", \"York\"], \"ner_tags\": [3, 4]}\n");
        var skipped = new List<int>();
        var examples = Read(head, path, new TrainingDataOptions { SkipMalformed = true, SkippedRecords = (_, l, _) => skipped.Add(l) });
        Assert.Equal([2], skipped);
        Assert.Equal([[1], [3, 4]], examples.Select(WordTags));
    }

    [Fact]
    public void Malformed_conll_sentences_can_be_skipped_and_counted()
    {
        using var head = FreshNer();
        var path = Write("mixed.conll", "John NNP B-NP B-PER\n\nbroken\nline NN O O\n\nthe DT O B-XYZ\n\nNew NNP B-NP B-LOC\nYork NNP I-NP I-LOC\n");
        var skipped = new List<(int Line, string Reason)>();
        var examples = Read(head, path, new TrainingDataOptions { SkipMalformed = true, SkippedRecords = (_, l, r) => skipped.Add((l, r)) });
        Assert.Equal(2, examples.Count);
        Assert.Equal([3, 6], skipped.Select(s => s.Line));
        Assert.Contains("has one column", skipped[0].Reason);
        Assert.Contains("tag 'B-XYZ' is not one of the head's labels", skipped[1].Reason);
    }

    [Fact]
    public void Loss_is_cross_entropy_over_the_labelled_positions_only()
    {
        using var head = FreshNer();
        var f = Read(head, Write("one.conll", "John B-PER\nplaying O\n")).Single();   // [CLS] john play ##ing [SEP]: 2 labelled
        var batch = new HeadBatch([f], CPU);
        var values = new float[1 * 6 * 5];   // one extra padded position, as in a batch
        values[1 * 5 + 1] = 2f;              // john: B-PER logit 2
        values[2 * 5 + 3] = 1f;              // play: B-LOC logit 1, gold O
        for (var j = 0; j < 5; j++) values[3 * 5 + j] = 50f * j;   // ##ing and padding are ignored
        using var logits = tensor(values, [1, 6, 5]);
        var nll0 = Math.Log(Math.Exp(2) + 4) - 2;
        var nll1 = Math.Log(Math.Exp(1) + 4) - 0;
        using var loss = head.Training!.Loss(logits, batch);
        Assert.Equal((nll0 + nll1) / 2, loss.item<float>(), 5);

        // Class weights make it a weighted mean over the labelled tokens (B-PER weighs 3, O 1).
        using var weighted = FreshNer(options: """{"class_weights": [1, 3, 1, 1, 1]}""");
        using var wloss = weighted.Training!.Loss(logits, new HeadBatch([Read(weighted, Write("one.conll", "John B-PER\nplaying O\n")).Single()], CPU));
        Assert.Equal((3 * nll0 + nll1) / 4, wloss.item<float>(), 5);

        // balanced, from training tags B-PER, O, O: w_O = 3 / (5 * 2), w_B-PER = 3 / (5 * 1).
        using var balanced = FreshNer(options: """{"class_weights": "balanced"}""");
        balanced.Training!.PrepareTraining(Read(balanced, Write("three.conll", "John B-PER\nsat O\nthere O\n")));
        using var bloss = balanced.Training.Loss(logits, new HeadBatch([Read(balanced, Write("one.conll", "John B-PER\nplaying O\n")).Single()], CPU));
        Assert.Equal((0.6 * nll0 + 0.3 * nll1) / 0.9, bloss.item<float>(), 5);
    }

    /// <summary>Runs the metric over sentences: gold tags in a jsonl file, predictions as hand-made logits on each word's first sub-token.</summary>
    private static IReadOnlyDictionary<string, double> Metric(IHead head, params (string[] Gold, string[] Predicted)[] sentences)
    {
        var metric = head.Training!.CreateMetric();
        Assert.Equal("f1", metric.Primary);
        foreach (var (gold, predicted) in sentences)
        {
            var words = gold.Select(_ => "dog").ToArray();
            var path = Write("s.jsonl", System.Text.Json.JsonSerializer.Serialize(new { tokens = words, tags = gold }) + "\n");
            var f = Read(head, path).Single();
            using var logits = HandLogits([f], head.Labels.Count, (s, p) => s.WordIds[p] is { } w ? head.Labels.ToList().IndexOf(predicted[w]) : 0);
            metric.Update(logits, new HeadBatch([f], CPU));
        }
        return metric.Compute();
    }

    [Fact]
    public void Entity_F1_has_seqeval_semantics_exact_spans_and_types()
    {
        using var head = FreshNer();
        var m = Metric(head,
            (["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC"]),   // both right
            (["B-PER", "I-PER", "O"], ["B-PER", "O", "O"]),                            // partial span: wrong
            (["B-LOC", "O"], ["B-PER", "O"]),                                         // wrong type
            (["O", "O"], ["I-LOC", "I-LOC"]));                                        // I- after O starts an entity
        // PER: gold 2, predicted 3, right 1; LOC: gold 2, predicted 2, right 1
        Assert.Equal(2 / 5.0, m["precision"], 10);
        Assert.Equal(2 / 4.0, m["recall"], 10);
        Assert.Equal(2 * 0.4 * 0.5 / 0.9, m["f1"], 10);
        Assert.Equal(1 / 3.0, m["PER.precision"], 10);
        Assert.Equal(0.5, m["PER.recall"], 10);
        Assert.Equal(0.4, m["PER.f1"], 10);
        Assert.Equal(0.5, m["LOC.f1"], 10);
        Assert.Equal(2, m["LOC.support"]);
        Assert.Equal(7 / 11.0, m["accuracy"], 10);
        Assert.Equal(4, m["examples"]);
    }

    [Fact]
    public void Entity_F1_reads_IOB1_where_B_only_separates_adjacent_entities()
    {
        using var head = FreshNer(options: """{"scheme": "iob1"}""");
        // gold IOB1: "I-PER I-PER B-PER" = two persons; predicted one person over all three words
        var m = Metric(head, (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], ["I-PER", "I-PER", "I-PER", "O", "I-LOC"]));
        Assert.Equal(1 / 2.0, m["precision"], 10);   // LOC right, the long PER wrong
        Assert.Equal(1 / 3.0, m["recall"], 10);
        Assert.Equal(0.0, m["PER.f1"], 10);
        Assert.Equal(1.0, m["LOC.f1"], 10);
        Assert.Equal(1.0, Metric(head, (["I-PER", "B-PER"], ["I-PER", "B-PER"]))["f1"], 10);
        Assert.Equal(0.0, Metric(head, (["O"], ["O"]))["f1"], 10);   // nothing to find: 0, as seqeval
    }

    [SharedDataFact("data/conll2003/train.txt")]
    public void The_shared_CoNLL_2003_training_file_reads()
    {
        using var head = FreshNer(labels: Conll9);
        var examples = head.Training!.ReadExamples(TestPaths.SharedPath("data", "conll2003", "train.txt"), new TrainingDataOptions()).Take(200).ToList();
        Assert.Equal(200, examples.Count);
        // EU rejects German call to boycott British lamb .
        Assert.Equal([3, 0, 7, 0, 0, 0, 7, 0, 0], WordTags(examples[0]));
        Assert.Equal([1, 2], WordTags(examples[1]));   // Peter Blackburn
        Assert.All(examples, e => Assert.All(e.Sequences, s => Assert.True(s.Length <= TinyBert.MaxSequenceLength)));
        var first = examples[0].Sequences[0];
        Assert.Equal(TinyBert.Tokenizer.EncodeWords(["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."])[0].InputIds, first.InputIds);
    }

    [SharedDataFact("data/conll2003/eng.train")]
    public void The_IOB1_CoNLL_2003_file_reads_into_the_same_IOB2_tags()
    {
        using var head = FreshNer(labels: Conll9);
        var iob1 = head.Training!.ReadExamples(TestPaths.SharedPath("data", "conll2003", "eng.train"), new TrainingDataOptions()).Take(300).Select(WordTags).ToList();
        var iob2 = head.Training!.ReadExamples(TestPaths.SharedPath("data", "conll2003", "train.txt"), new TrainingDataOptions()).Take(300).Select(WordTags).ToList();
        Assert.Equal(iob2, iob1);
    }
}
