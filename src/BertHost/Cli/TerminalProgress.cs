using Spectre.Console;

namespace BertHost.Cli;

/// <summary>
/// A Spectre.Console progress bar on an interactive terminal's stderr (description, bar, percentage, elapsed and
/// remaining time), for the verbs whose work reports through <see cref="IProgress{T}"/> from a synchronous loop: the
/// bar renders on its own thread and the loop only sets values. Elsewhere (redirected stderr, CI, tests) the verbs
/// print plain lines instead.
/// </summary>
internal sealed class TerminalProgress : IDisposable
{
    private readonly ManualResetEventSlim _started = new();
    private readonly ManualResetEventSlim _done = new();
    private readonly Task _render;
    private ProgressTask? _task;

    /// <summary>Whether <paramref name="error"/> is this process's stderr on a terminal: only then does a bar make sense.</summary>
    public static bool IsInteractive(TextWriter error) => ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected;

    public TerminalProgress(string description)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        _render = Task.Run(() => console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                _task = context.AddTask(Markup.Escape(description), maxValue: 1);
                _started.Set();
                _done.Wait();
                context.Refresh();
            }));
        // A renderer that fails to start (no terminal after all) must not hang the verb.
        if (!_started.Wait(TimeSpan.FromSeconds(5))) _done.Set();
    }

    /// <summary>Progress <paramref name="done"/> of <paramref name="total"/>, with the line to show beside the bar.</summary>
    public void Update(double done, double total, string description)
    {
        if (_task is not { } task) return;
        task.MaxValue = Math.Max(total, 1e-9);
        task.Value = Math.Min(done, task.MaxValue);
        task.Description = Markup.Escape(description);
    }

    public void Dispose()
    {
        if (_task is { } task) task.Value = task.MaxValue;
        _done.Set();
        try
        {
            _render.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // The bar is decoration: a rendering failure never fails the verb.
        }
    }
}
