using System.Runtime.InteropServices;
using BertHost.Cli;

// Before any thread allocates: the malloc settings (arena count above all) apply to what is allocated after them.
BertHost.Core.Backends.NativeHeap.EnsureTuned();

using var cts = new CancellationTokenSource();
// SIGINT (Ctrl+C), SIGTERM (systemd, docker stop, kill) and SIGQUIT ask the running verb to stop: the daemon then stops
// listening, drains in-flight requests and exits 0, instead of being killed mid-request.
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
using var sigquit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, Stop);

var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
try
{
    return await CliApp.CreateDefault().RunAsync(args, new CommandContext(Console.In, stdout, Console.Error), cts.Token);
}
finally
{
    stdout.Flush();
}

void Stop(PosixSignalContext context)
{
    context.Cancel = true;
    cts.Cancel();
}
