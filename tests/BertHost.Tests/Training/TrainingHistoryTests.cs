using System.Globalization;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using BertHost.Core.Training;
using BertHost.Tests.Plugins;
using BertHost.Tests.Support;

namespace BertHost.Tests.Training;

/// <summary>history.json / history.csv / history.svg of a training run, from <see cref="TrainingHistory"/> and from <c>berthost train</c>.</summary>
public sealed class TrainingHistoryTests : IDisposable
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-history-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static List<EpochResult> ThreeEpochs() =>
    [
        new(1, 0.69, new Dictionary<string, double> { ["accuracy"] = 0.5, ["f1"] = 0.4 }, 1.25),
        new(2, 0.55, new Dictionary<string, double> { ["accuracy"] = 0.625, ["f1"] = 0.6 }, 1.5),
        new(3, 0.41, new Dictionary<string, double> { ["accuracy"] = 0.75, ["f1"] = 0.7 }, 1.75),
    ];

    [Fact]
    public void Json_has_the_epochs_options_and_data_files_with_their_sha256()
    {
        var data = Path.Combine(_dir.FullName, "train.tsv");
        File.WriteAllText(data, "sentence\tlabel\nabc\t1\n");
        var file = TrainingDataFile.Describe("train", data);
        // sha256 of "sentence\tlabel\nabc\t1\n"
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(data))), file.Sha256);
        Assert.Equal(64, file.Sha256.Length);
        Assert.Equal(new FileInfo(data).Length, file.Bytes);

        var history = new TrainingHistory(ThreeEpochs(), "accuracy",
            new TrainingOptions { Mode = TrainingMode.Partial, Epochs = 3, BatchSize = 8, Seed = 5 }, [file],
            new Dictionary<string, JsonNode?> { ["head"] = "sentiment", ["best_epoch"] = 3 });
        var json = JsonNode.Parse(history.ToJson())!;

        Assert.Equal("sentiment", (string)json["head"]!);
        Assert.Equal(3, (int)json["best_epoch"]!);
        Assert.Equal("accuracy", (string)json["primary_metric"]!);
        Assert.Equal("partial", (string)json["options"]!["mode"]!);
        Assert.Equal(8, (int)json["options"]!["batch_size"]!);
        Assert.Equal(5, (int)json["options"]!["seed"]!);
        Assert.Equal(3e-5, (double)json["options"]!["learning_rate"]!);
        var d = Assert.Single(json["data"]!.AsArray())!;
        Assert.Equal("train", (string)d["role"]!);
        Assert.Equal(Path.GetFullPath(data), (string)d["path"]!);
        Assert.Equal(file.Sha256, (string)d["sha256"]!);
        var epochs = json["epochs"]!.AsArray();
        Assert.Equal(3, epochs.Count);
        Assert.Equal(2, (int)epochs[1]!["epoch"]!);
        Assert.Equal(0.55, (double)epochs[1]!["loss"]!);
        Assert.Equal(1.5, (double)epochs[1]!["seconds"]!);
        Assert.Equal(0.625, (double)epochs[1]!["metrics"]!["accuracy"]!);
        Assert.Equal(0.6, (double)epochs[1]!["metrics"]!["f1"]!);
    }

    [Fact]
    public void Csv_has_a_header_with_the_metric_columns_and_one_row_per_epoch()
    {
        var epochs = ThreeEpochs();
        epochs.Add(new EpochResult(4, 0.3, null, 2)); // not evaluated: empty metric cells
        var lines = new TrainingHistory(epochs, "accuracy").ToCsv().Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(5, lines.Length);
        Assert.Equal("epoch,loss,seconds,accuracy,f1", lines[0]);
        Assert.Equal("1,0.69,1.25,0.5,0.4", lines[1]);
        Assert.Equal("3,0.41,1.75,0.75,0.7", lines[3]);
        Assert.Equal("4,0.3,2,,", lines[4]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(25)]
    public void Svg_is_well_formed_with_one_loss_and_one_metric_polyline_of_one_point_per_epoch(int count)
    {
        var epochs = Enumerable.Range(1, count)
            .Select(i => new EpochResult(i, 1.0 / i, new Dictionary<string, double> { ["f1"] = i / (double)(count + 1) }, 1)).ToList();
        var svg = XDocument.Parse(new TrainingHistory(epochs, "f1").ToSvg());

        Assert.Equal(Svg + "svg", svg.Root!.Name);
        var lines = svg.Descendants(Svg + "polyline").ToList();
        Assert.Equal(2, lines.Count);
        Assert.Equal(["loss", "metric"], lines.Select(l => (string)l.Attribute("class")!));
        foreach (var line in lines)
        {
            var points = ((string)line.Attribute("points")!).Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(p => p.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToList();
            Assert.Equal(count, points.Count);
            Assert.All(points, p => Assert.Equal(2, p.Length));
            Assert.All(points, p => Assert.InRange(p[0], 0, 640));
            Assert.All(points, p => Assert.InRange(p[1], 0, 360));
            Assert.Equal(points.Select(p => p[0]).OrderBy(x => x), points.Select(p => p[0])); // left to right by epoch
        }
        // Loss falls every epoch: its y (SVG y grows downward) never decreases.
        var lossYs = ((string)lines[0].Attribute("points")!).Split(' ').Select(p => double.Parse(p.Split(',')[1], CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(lossYs.OrderBy(y => y), lossYs);
        var texts = svg.Descendants(Svg + "text").Select(t => t.Value).ToList();
        Assert.Contains("training loss", texts);
        Assert.Contains("eval f1", texts);
        Assert.Contains("1", texts);        // an epoch tick label
        Assert.Contains("epoch", texts);
        Assert.Contains(svg.Descendants(Svg + "g"), g => (string?)g.Attribute("class") == "legend");
    }

    [Fact]
    public void Svg_without_eval_draws_only_the_loss_series()
    {
        var epochs = new List<EpochResult> { new(1, 0.7, null, 1), new(2, 0.6, null, 1) };
        var svg = XDocument.Parse(new TrainingHistory(epochs, "accuracy").ToSvg());
        var line = Assert.Single(svg.Descendants(Svg + "polyline"));
        Assert.Equal("loss", (string)line.Attribute("class")!);
    }

    [Fact]
    public void WriteTo_writes_the_three_files()
    {
        var dir = Path.Combine(_dir.FullName, "h");
        var paths = new TrainingHistory(ThreeEpochs(), "accuracy").WriteTo(dir);
        Assert.Equal(["history.json", "history.csv", "history.svg"], paths.Select(Path.GetFileName));
        Assert.All(paths, p => Assert.True(File.Exists(p)));
    }

    [Fact]
    public async Task Train_writes_the_history_into_the_out_folder_or_the_history_folder()
    {
        var config = Path.Combine(_dir.FullName, "deployment.yaml");
        File.WriteAllText(config, $"""
            body:
              checkpoint: {ReferenceOutputs.ModelFolder("tiny-bert")}
            heads:
              - name: sentiment
                kind: text-classification
                plugin: {HeadTestSupport.ClassificationPlugin}
                labels: [negative, positive]
            """);
        var data = TrainingData.WriteJsonl(8, seed: 3, _dir.FullName);
        var outDir = Path.Combine(_dir.FullName, "out");
        var train = await CliRunner.RunAsync("train", "--config", config, "--head", "sentiment", "--train", data, "--eval", data,
            "--epochs", "2", "--batch-size", "4", "--out", outDir);
        Assert.True(train.ExitCode == 0, train.Error);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "history.json")))!;
        Assert.Equal(2, json["epochs"]!.AsArray().Count);
        Assert.Equal("sentiment", (string)json["head"]!);
        Assert.Equal(8, (int)json["train_examples"]!);
        var files = json["data"]!.AsArray();
        Assert.Equal(["train", "eval"], files.Select(f => (string)f!["role"]!));
        Assert.All(files, f => Assert.Equal(64, ((string)f!["sha256"]!).Length));
        var csv = File.ReadAllLines(Path.Combine(outDir, "history.csv"));
        Assert.Equal(3, csv.Length);
        Assert.StartsWith("epoch,loss,seconds,accuracy", csv[0]);
        Assert.Equal(2, XDocument.Load(Path.Combine(outDir, "history.svg")).Descendants(Svg + "polyline").Count());

        var historyDir = Path.Combine(_dir.FullName, "history");
        var again = await CliRunner.RunAsync("train", "--config", config, "--head", "sentiment", "--train", data,
            "--epochs", "1", "--batch-size", "4", "--out", Path.Combine(_dir.FullName, "out2"), "--history", historyDir);
        Assert.True(again.ExitCode == 0, again.Error);
        Assert.True(File.Exists(Path.Combine(historyDir, "history.svg")));
        Assert.False(File.Exists(Path.Combine(_dir.FullName, "out2", "history.json")));
        Assert.Single(XDocument.Load(Path.Combine(historyDir, "history.svg")).Descendants(Svg + "polyline"));
    }
}
