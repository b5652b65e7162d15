using BertHost.Cli;

namespace BertHost.Tests.Support;

/// <summary>Runs <c>berthost</c> verbs in-process with captured output, as the executable's Program does.</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Out, string Error)
    {
        public string[] OutLines => Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public static async Task<Result> RunWithStdinAsync(string stdin, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var app = CliApp.CreateDefault();
        var code = await app.RunAsync(args, new CommandContext(new StringReader(stdin), output, error));
        return new Result(code, output.ToString(), error.ToString());
    }

    public static Task<Result> RunAsync(params string[] args) => RunWithStdinAsync("", args);
}
