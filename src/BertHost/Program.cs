using BertHost.Cli;

var app = CliApp.CreateDefault();
using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};
var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
try
{
    return await app.RunAsync(args, new CommandContext(Console.In, stdout, Console.Error), cts.Token);
}
finally
{
    stdout.Flush();
}
