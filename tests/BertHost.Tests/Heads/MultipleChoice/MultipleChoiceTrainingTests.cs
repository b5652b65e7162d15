using BertHost.Abstractions.Heads;
using static BertHost.Tests.Heads.MultipleChoice.McSupport;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Heads.MultipleChoice;

public class MultipleChoiceTrainingTests
{
    private static List<HeadFeatures> Read(IHead head, string path, TrainingDataOptions? options = null) =>
        head.Training!.ReadExamples(path, options ?? new TrainingDataOptions()).ToList();

    private const string SwagHeader = ",video-id,fold-ind,startphrase,sent1,sent2,gold-source,ending0,ending1,ending2,ending3,label\n";

    [Fact]
    public void Swag_csv_reads_quoted_fields_with_commas_quotes_and_line_breaks()
    {
        using var head = Head();
        var path = Write("train.csv", SwagHeader +
            "0,lsmdc1,19,\"the dog sat, then\",\"the dog sat, on the mat\",then it,gold,went home,\"said \"\"no\"\"\",ran away,is happy,1\n" +
            "1,anetv,5,x,\"she went\nto the city\",,gen,a,b,c,d,3\r\n" +
            "\n" +
            "2,anetv,6,x,he went,he,gen,ran,sat,looked,went,0", bom: true);
        var examples = Read(head, path);
        Assert.Equal([1, 3, 0], examples.Select(Label));
        var tok = TinyBert.Tokenizer;
        Assert.Equal(4, examples[0].Sequences.Count);
        Assert.Equal(["went home", "said \"no\"", "ran away", "is happy"], Choices(examples[0]));
        Assert.Equal(tok.Encode("the dog sat, on the mat", "then it said \"no\"")[0].InputIds, examples[0].Sequences[1].InputIds);
        // an empty sent2: the endings alone; a quoted line break stays in the field
        Assert.Equal(tok.Encode("she went\nto the city", "d")[0].InputIds, examples[1].Sequences[3].InputIds);
        Assert.Equal(tok.Encode("he went", "he looked")[0].InputIds, examples[2].Sequences[2].InputIds);
        Assert.Equal(["swag-csv", "jsonl"], head.Training!.DataFormats);
    }

    [Fact]
    public void Swag_csv_line_numbers_count_line_breaks_inside_quotes()
    {
        using var head = Head();
        var path = Write("train.csv", "sent1,sent2,ending0,ending1,label\n\"a\nb\nc\",q,x,y,0\nd,q,x,y,5\n");
        var e = Assert.Throws<TrainingDataException>(() => Read(head, path));
        Assert.Equal(5, e.Line);
        Assert.Contains("label '5' is not an ending index (0..1)", e.Reason);
    }

    [Theory]
    [InlineData("sent1,sent2,ending0,ending1,label\na,b,c,d,2\n", 2, "label '2' is not an ending index (0..1)")]
    [InlineData("sent1,sent2,ending0,ending1,label\na,b,c,d,x\n", 2, "label 'x' is not an ending index")]
    [InlineData("sent1,sent2,ending0,ending1,label\na,b,c,d,-1\n", 2, "label '-1' is not an ending index")]
    [InlineData("sent1,sent2,ending0,ending1,label\na,b,c,d,\n", 2, "the label column is empty")]
    [InlineData("sent1,sent2,ending0,ending1,label\na,b,c,d\n", 2, "4 comma-separated columns, the header has 5")]
    [InlineData("sent1,sent2,ending0,ending1,label\na,b,c,d,1,e\n", 2, "6 comma-separated columns, the header has 5")]
    [InlineData("sent1,sent2,ending0,ending1,label\n,b,c,d,1\n", 2, "the sent1 (context) column is empty")]
    [InlineData("sent1,sent2,ending0,ending1,label\na,b,c, ,1\n", 2, "the ending1 column is empty")]
    [InlineData("sent1,sent2,ending0,ending1,label\na,\"b\"x,c,d,1\n", 2, "unexpected 'x' after the closing quote of column 2")]
    [InlineData("sent1,sent2,ending0,ending1,label\na,b,c,d,1\na,\"b,c,d,1\n", 3, "never closed")]
    [InlineData("sent2,ending0,ending1,label\nb,c,d,1\n", 1, "has no sent1 (context) column")]
    [InlineData("sent1,sent2,ending0,ending1\na,b,c,d\n", 1, "has no label column")]
    [InlineData("sent1,sent2,ending0,label\na,b,c,0\n", 1, "has only ending0 column")]
    [InlineData("sent1,ending0,ending1,ending3,label\na,b,c,d,0\n", 1, "ending3 does not follow ending0..ending1")]
    [InlineData("", 1, "the file is empty")]
    public void Malformed_swag_rows_name_file_and_line(string content, int line, string reason)
    {
        using var head = Head();
        var path = Write("bad.csv", content);
        var e = Assert.Throws<TrainingDataException>(() => Read(head, path));
        Assert.Equal(path, e.File);
        Assert.Equal(line, e.Line);
        Assert.Contains(reason, e.Reason);
        Assert.StartsWith($"{path}:{line}: ", e.Message);
    }

    [Fact]
    public void More_endings_than_max_choices_is_refused_on_the_header()
    {
        using var head = Head(options: """{"max_choices": 2}""");
        var path = Write("train.csv", "sent1,sent2,ending0,ending1,ending2,label\na,b,c,d,e,0\n");
        var e = Assert.Throws<TrainingDataException>(() => Read(head, path));
        Assert.Equal(1, e.Line);
        Assert.Contains("at most 2 choices", e.Reason);
    }

    [Fact]
    public void Malformed_rows_can_be_skipped_and_reported()
    {
        using var head = Head();
        var path = Write("mixed.csv", "sent1,sent2,ending0,ending1,label\na,b,c,d,1\na,b,c,d,9\n\na,\"b\"z,c,d,0\na,b,c,d,0\n");
        var skipped = new List<(int Line, string Reason)>();
        var examples = Read(head, path, new TrainingDataOptions { SkipMalformed = true, SkippedRecords = (_, l, r) => skipped.Add((l, r)) });
        Assert.Equal([1, 0], examples.Select(Label));
        Assert.Equal([3, 5], skipped.Select(s => s.Line));
    }

    [Fact]
    public void Malformed_jsonl_records_can_be_skipped_and_counted()
    {
        using var head = Head();
        var path = Write("mixed.jsonl", string.Join("\n",
            """{"context": "c", "choices": ["x", "y"], "label": 1}""",
            """{"context": "c", "choices": ["x", "y"], "label": 5}""",
            """{"context": "c", "choices": ["x", "y"]}""",
            """{"context": "c", "choices": ["x", "y"], "label": 0}""") + "\n");
        var skipped = new List<int>();
        var examples = Read(head, path, new TrainingDataOptions { SkipMalformed = true, SkippedRecords = (_, l, _) => skipped.Add(l) });
        Assert.Equal([1, 0], examples.Select(Label));
        Assert.Equal([2, 3], skipped);
    }

    [Fact]
    public void Jsonl_takes_an_index_or_the_choice_text_and_ragged_choice_counts()
    {
        using var head = Head();
        var path = Write("data.txt",
            """{"context": "the dog sat", "choices": ["on the mat", "in the city"], "label": 1}""" + "\n\n" +
            """{"context": "he went", "question": "to the", "choices": ["store", "city", "river"], "label": "river"}""" + "\n");
        var examples = Read(head, path);   // detected from the first character
        Assert.Equal([1, 2], examples.Select(Label));
        Assert.Equal([2, 3], examples.Select(e => e.Sequences.Count));
        Assert.Equal(TinyBert.Tokenizer.Encode("he went", "to the river")[0].InputIds, examples[1].Sequences[2].InputIds);
    }

    [Theory]
    [InlineData("""{"context": "a", "choices": ["x", "y"]}""", "label is missing")]
    [InlineData("""{"context": "a", "choices": ["x", "y"], "label": 2}""", "label 2 is not a choice index (0..1)")]
    [InlineData("""{"context": "a", "choices": ["x", "y"], "label": "z"}""", "label 'z' is not one of the choices")]
    [InlineData("""{"context": "a", "choices": ["x", "y"], "label": [0]}""", "label must be a choice index or the text of a choice")]
    [InlineData("""{"context": "a", "choices": ["x"], "label": 0}""", "choices: choices must hold at least 2 choices")]
    [InlineData("""{"context": "a", "choices": ["x", 1], "label": 0}""", "choices[1]: choices[1] must be a string")]
    [InlineData("""{"choices": ["x", "y"], "label": 0}""", "context: context is missing")]
    [InlineData("""{"context": "a", "choices": ["x", "y"], "label": 0, "extra": 1}""", "unknown input field 'extra'")]
    [InlineData("""{"context": "a", "choices": ["x", "y"], "label": 0""", "not valid JSON")]
    [InlineData("""[1, 2]""", "each line must be a JSON object")]
    public void Malformed_jsonl_records_name_file_and_line(string record, string reason)
    {
        using var head = Head();
        var path = Write("bad.jsonl", """{"context": "ok", "choices": ["x", "y"], "label": 0}""" + "\n" + record + "\n");
        var e = Assert.Throws<TrainingDataException>(() => Read(head, path));
        Assert.Equal(path, e.File);
        Assert.Equal(2, e.Line);
        Assert.Contains(reason, e.Reason);
    }

    private static HeadFeatures Labelled(IHead head, int choices, int label)
    {
        var list = string.Join(", ", Enumerable.Range(0, choices).Select(i => $"\"choice {i}\""));
        var path = Write("one.jsonl", $$"""{"context": "c", "choices": [{{list}}], "label": {{label}}}""" + "\n");
        return Read(head, path).Single();
    }

    private static double Nll(double[] z, int label) => Math.Log(z.Sum(Math.Exp)) - z[label];

    [Fact]
    public void Loss_is_the_mean_cross_entropy_over_each_items_own_choices()
    {
        using var head = Head();
        // three items of 2, 4 and 3 choices: rows concatenated as HeadBatch lays them out
        var batch = new HeadBatch([Labelled(head, 2, 1), Labelled(head, 4, 3), Labelled(head, 3, 0)], CPU);
        Assert.Equal([0, 2, 6], batch.RowStarts);
        double[] a = [0.5, -1], b = [2, 1, 0, 3], c = [1, 1, 4];
        using var logits = tensor(a.Concat(b).Concat(c).Select(v => (float)v).ToArray());
        var expected = (Nll(a, 1) + Nll(b, 3) + Nll(c, 0)) / 3;
        using var loss = head.Training!.Loss(logits, batch);
        Assert.Equal(0, loss.dim());
        Assert.Equal(expected, loss.item<float>(), 5);

        // the gradient reaches every row, and only through the item's own softmax
        using var leaf = tensor(a.Concat(b).Concat(c).Select(v => (float)v).ToArray()).requires_grad_(true);
        using var l2 = head.Training.Loss(leaf, batch);
        l2.backward();
        var grad = leaf.grad!.data<float>().ToArray();
        var softA = a.Select(v => Math.Exp(v) / a.Sum(Math.Exp)).ToArray();
        Assert.Equal((softA[0] - 0) / 3, grad[0], 5);
        Assert.Equal((softA[1] - 1) / 3, grad[1], 5);
        Assert.Equal(0, grad.Sum(), 5);   // each item's softmax minus one-hot sums to 0
    }

    [Fact]
    public void Loss_also_takes_logits_of_shape_rows_by_one()
    {
        using var head = Head();
        var batch = new HeadBatch([Labelled(head, 2, 0), Labelled(head, 2, 1)], CPU);
        using var logits = tensor(new float[] { 1, 0, 0, 1 }, [4, 1]);
        using var loss = head.Training!.Loss(logits, batch);
        Assert.Equal(Nll([1, 0], 0), loss.item<float>(), 5);
    }

    [Fact]
    public void Accuracy_counts_items_whose_best_choice_is_gold_across_batches()
    {
        using var head = Head();
        var metric = head.Training!.CreateMetric();
        Assert.Equal("accuracy", metric.Primary);
        var first = new HeadBatch([Labelled(head, 2, 1), Labelled(head, 4, 2)], CPU);
        using (var l = tensor(new float[] { 0, 1, /**/ 5, 0, 1, 2 })) metric.Update(l, first);   // right, wrong
        var second = new HeadBatch([Labelled(head, 3, 0)], CPU);
        using (var l = tensor(new float[] { 3, 3, 1 })) metric.Update(l, second);                 // tie -> first: right
        var m = metric.Compute();
        Assert.Equal(2 / 3.0, m["accuracy"], 10);
        Assert.Equal(3, m["examples"]);
    }

    [Fact]
    public void A_few_steps_of_head_training_lower_the_loss()
    {
        using var head = Head(options: """{"dropout": 0}""");
        var path = Write("train.jsonl", string.Join("\n",
            """{"context": "the dog sat on the mat", "choices": ["the cat sat", "the dog is happy"], "label": 1}""",
            """{"context": "she went to the city", "question": "then she", "choices": ["said no", "looked at the river", "went home"], "label": 2}""",
            """{"context": "we will see", "choices": ["what happens", "the quick brown fox", "today", "next week"], "label": 0}""") + "\n");
        var examples = Read(head, path);
        var batch = new HeadBatch(examples, CPU);
        using var output = TinyBert.Forward(Core.Text.PaddedBatch.Create(examples.SelectMany(f => f.Sequences).ToList(), TinyBert.Tokenizer.PadTokenId));
        var optimizer = optim.Adam(head.Module.parameters(), 0.05);
        head.Module.train();
        float first = 0, last = 0;
        for (var step = 0; step < 20; step++)
        {
            optimizer.zero_grad();
            using var logits = head.Forward(output, batch);
            using var loss = head.Training!.Loss(logits, batch);
            loss.backward();
            optimizer.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        head.Module.eval();
        Assert.True(last < first * 0.7, $"loss {first} -> {last}");
    }
}
