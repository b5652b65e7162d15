using System.Text;
using BertHost.Abstractions.Heads;
using BertHost.Tests.Support;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;

namespace BertHost.Tests.Heads.Classification;

public class ClassificationTrainingTests
{
    private static IHead Head(string[] labels, string? options = null) =>
        TextClassification.CreateHead(Context(TinyBert, labels: labels, options: options));

    private static HeadFeatures Labelled(IHead head, string text, string label)
    {
        var path = Path.Combine(TempFolder(), "one.jsonl");
        File.WriteAllText(path, $$"""{"text": "{{text}}", "label": "{{label}}"}""" + "\n");
        return head.Training!.ReadExamples(path, new TrainingDataOptions()).Single();
    }

    private static string Write(string name, string content, bool bom = false)
    {
        var path = Path.Combine(TempFolder(), name);
        File.WriteAllText(path, content, new UTF8Encoding(bom));
        return path;
    }

    [Fact]
    public void Cross_entropy_matches_a_hand_computation_with_and_without_class_weights()
    {
        using var head = Head(["a", "b", "c"]);
        var batch = new HeadBatch([Labelled(head, "x", "b"), Labelled(head, "y", "c")], CPU);
        using var logits = tensor(new float[] { 1, 2, 0, 0.5f, 0.5f, 3 }, [2, 3]);
        var nll0 = Math.Log(Math.Exp(1) + Math.Exp(2) + Math.Exp(0)) - 2;
        var nll1 = Math.Log(2 * Math.Exp(0.5) + Math.Exp(3)) - 3;
        using var loss = head.Training!.Loss(logits, batch);
        Assert.Equal((nll0 + nll1) / 2, loss.item<float>(), 5);

        using var weighted = Head(["a", "b", "c"], """{"class_weights": [1, 2, 3]}""");
        using var wloss = weighted.Training!.Loss(logits, batch);
        Assert.Equal((2 * nll0 + 3 * nll1) / 5, wloss.item<float>(), 5);

        // balanced: n / (k * n_c) from the training labels b, b, b, c (a is absent: weight 1).
        using var balanced = Head(["a", "b", "c"], """{"class_weights": "balanced"}""");
        balanced.Training!.PrepareTraining([Labelled(balanced, "p", "b"), Labelled(balanced, "q", "b"), Labelled(balanced, "r", "b"), Labelled(balanced, "s", "c")]);
        double wb = 4.0 / (3 * 3), wc = 4.0 / (3 * 1);
        using var bloss = balanced.Training.Loss(logits, new HeadBatch([Labelled(balanced, "x", "b"), Labelled(balanced, "y", "c")], CPU));
        Assert.Equal((wb * nll0 + wc * nll1) / (wb + wc), bloss.item<float>(), 5);
        Assert.Equal("balanced", (string)balanced.Describe()["options"]!["class_weights"]!);
    }

    [Fact]
    public void Multi_label_loss_is_BCE_with_logits_over_every_label()
    {
        using var head = Head(["x", "y"], """{"problem_type": "multi_label"}""");
        var path = Write("ml.jsonl", """{"text": "a", "label": ["x"]}""" + "\n" + """{"text": "b", "label": [0, 1]}""" + "\n");
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList();
        var batch = new HeadBatch(examples, CPU);
        using var logits = tensor(new float[] { 2, -1, 0, 1 }, [2, 2]);
        double Bce(double z, double y) => Math.Log(1 + Math.Exp(-z)) + (1 - y) * z;
        var expected = (Bce(2, 1) + Bce(-1, 0) + Bce(0, 1) + Bce(1, 1)) / 4;
        using var loss = head.Training.Loss(logits, batch);
        Assert.Equal(expected, loss.item<float>(), 5);
    }

    private static IReadOnlyDictionary<string, double> Metric(IHead head, int[] gold, int[] predicted)
    {
        var features = gold.Select(g => Labelled(head, "x", head.Labels[g])).ToList();
        var n = head.Labels.Count;
        var values = predicted.SelectMany(p => Enumerable.Range(0, n).Select(j => j == p ? 5f : 0f)).ToArray();
        var metric = head.Training!.CreateMetric();
        Assert.Equal("accuracy", metric.Primary);
        // two batches, to check accumulation
        var half = gold.Length / 2;
        using (var a = tensor(values[..(half * n)], [half, n])) metric.Update(a, new HeadBatch(features.Take(half).ToList(), CPU));
        using (var b = tensor(values[(half * n)..], [gold.Length - half, n])) metric.Update(b, new HeadBatch(features.Skip(half).ToList(), CPU));
        return metric.Compute();
    }

    [Fact]
    public void Binary_F1_is_the_F1_of_the_last_label()
    {
        using var head = Head(["neg", "pos"]);
        var m = Metric(head, gold: [1, 1, 0, 0, 1], predicted: [1, 0, 0, 1, 1]);
        Assert.Equal(3 / 5.0, m["accuracy"], 10);
        Assert.Equal(2 * 2 / (2 * 2 + 1 + 1.0), m["f1"], 10);   // tp 2, fp 1, fn 1
        Assert.Equal(5, m["examples"]);
    }

    [Fact]
    public void Macro_F1_averages_the_labels_that_occur()
    {
        using var head = Head(["a", "b", "c", "d"]);
        var m = Metric(head, gold: [0, 1, 2, 2], predicted: [0, 2, 2, 1]);
        Assert.Equal(0.5, m["accuracy"], 10);
        Assert.Equal((1.0 + 0.0 + 0.5) / 3, m["f1"], 10);   // d never occurs
    }

    [Fact]
    public void Sst2_style_tsv_is_read_with_label_indices_or_names()
    {
        using var head = Head(["negative", "positive"]);
        var path = Write("train.tsv", "sentence\tlabel\nthe dog is happy \t1\nshe said no \t0\nthe cat\tnegative\n");
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList();
        Assert.Equal([1, 0, 0], examples.Select(e => ((Heads_State)e).Label));
        Assert.Equal(TinyBert.Tokenizer.Encode("the dog is happy ")[0].InputIds, examples[0].Sequences[0].InputIds);
    }

    [Fact]
    public void Mrpc_style_tsv_with_bom_and_quotes_reads_pairs()
    {
        using var head = Head(["not_equivalent", "equivalent"]);
        var path = Write("mrpc.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\the said \" no \" .\the went to the city\n0\t3\t4\tthe dog\tthe cat\n", bom: true);
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList();
        Assert.Equal([1, 0], examples.Select(e => ((Heads_State)e).Label));
        var s = examples[0].Sequences[0];
        Assert.Contains(1, s.TokenTypeIds);
        Assert.Contains("\"", s.Tokens);
        Assert.Equal(TinyBert.Tokenizer.Encode("he said \" no \" .", "he went to the city")[0].InputIds, s.InputIds);
    }

    [Fact]
    public void Jsonl_takes_names_or_indices_and_format_is_detected()
    {
        using var head = Head(["negative", "positive"]);
        var path = Write("data.txt", """{"text": "good", "label": "positive"}""" + "\n\n" + """{"text": "a", "text_pair": "b", "label": 0}""" + "\n");
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList();
        Assert.Equal([1, 0], examples.Select(e => ((Heads_State)e).Label));
        Assert.Equal(["glue-tsv", "jsonl"], head.Training.DataFormats);
    }

    [Theory]
    [InlineData("bad.jsonl", "{\"text\": \"a\", \"label\": \"positive\"}\n{\"text\": \"b\", \"label\": \"neutral\"}\n", 2, "label 'neutral' is not one of the head's labels (negative, positive)")]
    [InlineData("bad.jsonl", "{\"text\": \"a\", \"label\": 2}\n", 1, "label 2 is not an index of the 2 labels")]
    [InlineData("bad.jsonl", "{\"text\": \"a\"}\n", 1, "label is missing")]
    [InlineData("bad.jsonl", "{\"text\": \"a\", \"label\": 0\n", 1, "not valid JSON")]
    [InlineData("bad.tsv", "sentence\tlabel\na\t1\nb\t7\n", 3, "label 7 is not an index")]
    [InlineData("bad.tsv", "sentence\tlabel\na\t1\tx\n", 2, "3 tab-separated columns, the header has 2")]
    [InlineData("bad.tsv", "index\tsentence\n1\ta\n", 1, "has no label column")]
    public void Malformed_records_name_file_and_line(string name, string content, int line, string reason)
    {
        using var head = Head(["negative", "positive"]);
        var path = Write(name, content);
        var e = Assert.Throws<TrainingDataException>(() => head.Training!.ReadExamples(path, new TrainingDataOptions()).ToList());
        Assert.Equal(path, e.File);
        Assert.Equal(line, e.Line);
        Assert.Contains(reason, e.Reason);
        Assert.StartsWith($"{path}:{line}: ", e.Message);
    }

    [Fact]
    public void Malformed_records_can_be_skipped_and_reported()
    {
        using var head = Head(["negative", "positive"]);
        var path = Write("mixed.tsv", "sentence\tlabel\na\t1\nb\t9\nc\t0\n\t1\n");
        var skipped = new List<(int Line, string Reason)>();
        var examples = head.Training!.ReadExamples(path, new TrainingDataOptions
        {
            SkipMalformed = true,
            SkippedRecords = (_, line, reason) => skipped.Add((line, reason)),
        }).ToList();
        Assert.Equal(2, examples.Count);
        Assert.Equal([3, 5], skipped.Select(s => s.Line));
    }

    [Fact]
    public void Malformed_MRPC_pairs_and_jsonl_records_can_be_skipped_and_counted()
    {
        using var head = Head(["not_equivalent", "equivalent"]);
        var mrpc = Write("mrpc.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\ta cat\ta dog\n1\t3\t4\ta cat\t\n0\t5\t6\tthe man\n0\t7\t8\tthe day\tthe song\n", bom: true);
        var skipped = new List<(int Line, string Reason)>();
        var options = new TrainingDataOptions { SkipMalformed = true, SkippedRecords = (_, line, reason) => skipped.Add((line, reason)) };
        Assert.Equal(2, head.Training!.ReadExamples(mrpc, options).Count());
        Assert.Equal([(3, "the #2 String column is empty"), (4, "4 tab-separated columns, the header has 5")], skipped);

        skipped.Clear();
        var jsonl = Write("mixed.jsonl", "{\"text\": \"a\", \"label\": \"equivalent\"}\n{\"text\": \"b\"}\nnot json\n{\"text\": \"c\", \"label\": 0}\n");
        Assert.Equal(2, head.Training!.ReadExamples(jsonl, options).Count());
        Assert.Equal([2, 3], skipped.Select(s => s.Line));
        Assert.Equal("label is missing", skipped[0].Reason);
        Assert.StartsWith("not valid JSON: ", skipped[1].Reason);
    }

    [SharedDataFact("data/sst2/train.tsv")]
    public void The_shared_SST2_training_file_reads()
    {
        using var head = Head(["negative", "positive"]);
        var examples = head.Training!.ReadExamples(TestPaths.SharedPath("data", "sst2", "train.tsv"), new TrainingDataOptions()).Take(50).ToList();
        Assert.Equal(50, examples.Count);
        Assert.Equal(0, ((Heads_State)examples[0]).Label);   // "hide new secretions from the parental units" -> 0
        Assert.All(examples, e => Assert.Equal(TinyBert.Tokenizer.ClsTokenId, e.Sequences[0].InputIds[0]));
    }

    [SharedDataFact("data/mrpc/train.tsv")]
    public void The_shared_MRPC_training_file_reads_as_pairs()
    {
        using var head = Head(["not_equivalent", "equivalent"]);
        var examples = head.Training!.ReadExamples(TestPaths.SharedPath("data", "mrpc", "train.tsv"), new TrainingDataOptions()).Take(50).ToList();
        Assert.Equal(50, examples.Count);
        Assert.Equal([1, 0], examples.Take(2).Select(e => ((Heads_State)e).Label));
        Assert.All(examples, e => Assert.Contains(1, e.Sequences[0].TokenTypeIds));
    }
}

/// <summary>Reads the plugin's label out of <see cref="HeadFeatures.State"/> by reflection (the tests never reference the plugin).</summary>
internal readonly record struct Heads_State(int? Label)
{
    public static explicit operator Heads_State(HeadFeatures f) =>
        new((int?)f.State!.GetType().GetProperty("Label")!.GetValue(f.State));
}
