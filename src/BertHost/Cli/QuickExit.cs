using System.Runtime.InteropServices;

namespace BertHost.Cli;

/// <summary>
/// Ends verbs that only print (their output flushed, no file left open) without the process teardown: libtorch's
/// static destructors deregister every operator one by one at exit, ~0.1 s after the last line of <c>berthost embed</c>
/// (a tenth of a one-text run). Verbs that write files, train, or serve end normally.
/// </summary>
internal static class QuickExit
{
    private static readonly HashSet<string> PrintingVerbs = ["embed", "predict", "eval", "heads", "fill-mask"];

    public static void AfterPrinting(string[] args, int code)
    {
        if (!OperatingSystem.IsLinux() || args.Length == 0 || !PrintingVerbs.Contains(args[0])) return;
        Console.Out.Flush();
        Console.Error.Flush();
        Exit(code);
    }

    [DllImport("libc", EntryPoint = "_exit")]
    private static extern void Exit(int status);
}
