using BertHost.Benchmarks.Harness;
using BertHost.Benchmarks.Suites;
using TorchSharp;
using BertHost.Core.Checkpoints;

namespace BertHost.Benchmarks;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine(BenchOptions.Usage);
            return 0;
        }
        BenchOptions options;
        try
        {
            options = BenchOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"bench: {e.Message}");
            Console.Error.WriteLine(BenchOptions.Usage);
            return 2;
        }

        torch.set_num_threads(options.Threads);
        var sections = new List<Section>();
        try
        {
            var body = options.Suites.Contains("body");
            var onnx = options.Suites.Contains("onnx");
            if (options.Suites.Contains("profile")) sections.Add(new ProfileSuite(options).Run());
            if (options.Suites.Contains("precision")) sections.Add(new PrecisionSuite(options).Run());
            if (options.Suites.Contains("package")) sections.Add(new PackageSuite(options).Run());
            if (options.Suites.Contains("passes")) sections.Add(new PassSizeSuite(options).Run());
            if (body || onnx) sections.Add(new BodySuite(options, withOnnx: onnx).Run());
            if (options.Suites.Contains("http")) sections.Add(new HttpSuite(options).RunAsync().GetAwaiter().GetResult());
            if (options.Suites.Contains("training")) sections.Add(new TrainingSuite(options).Run());
            if (options.Suites.Contains("lora")) sections.Add(new LoraSuite(options).Run());
            if (options.Suites.Contains("memory")) sections.Add(new MemorySuite(options).RunAsync().GetAwaiter().GetResult());
        }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException or InvalidOperationException or BertHost.Core.Checkpoints.BodyLoadException)
        {
            Console.Error.WriteLine($"bench: {e.Message}");
            return 1;
        }
        var command = "dotnet run -c Release --project tests/BertHost.Benchmarks -- " + string.Join(" ", args);
        var text = Report.Write(options.Output, Report.Machine(options.Threads), command.TrimEnd(), sections);
        Console.WriteLine(text);
        Console.Error.WriteLine($"bench: wrote {Path.GetFullPath(Path.Combine(options.Output, "latest.md"))} and latest.json");
        return 0;
    }
}
