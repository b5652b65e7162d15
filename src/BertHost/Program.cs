using System.Runtime.InteropServices;
using BertHost.Cli;

// Before any thread allocates: the malloc settings (arena count above all) apply to what is allocated after them.
BertHost.Core.Backends.NativeHeap.EnsureTuned();

// Verbs that load a body: libtorch's shared objects (~0.15 s to map and relocate) load on a pool thread while the verb
// parses its arguments and reads its inputs; the first torch call on the verb's thread waits for the type initializer.
// A libtorch that fails to load fails that first call as before, with its message.
if (args.Length > 0 && args[0] is "embed" or "serve" or "predict" or "eval" or "train" or "pretrain" or "fill-mask" or "heads")
    _ = Task.Run(() =>
    {
        try
        {
            TorchSharp.torch.InitializeDeviceType(TorchSharp.DeviceType.CPU);
        }
        catch (Exception)
        {
        }
    });

using var cts = new CancellationTokenSource();
// SIGINT (Ctrl+C), SIGTERM (systemd, docker stop, kill) and SIGQUIT ask the running verb to stop: the daemon then stops
// listening, drains in-flight requests and exits 0, instead of being killed mid-request.
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
using var sigquit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, Stop);

var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
int code;
try
{
    code = await CliApp.CreateDefault().RunAsync(args, new CommandContext(Console.In, stdout, Console.Error), cts.Token);
}
finally
{
    stdout.Flush();
}
QuickExit.AfterPrinting(args, code);
return code;

void Stop(PosixSignalContext context)
{
    context.Cancel = true;
    cts.Cancel();
}
