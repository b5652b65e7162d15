using System.Diagnostics;

namespace BertHost.Core.Serving;

/// <summary>
/// The serving path's traces: one <see cref="ActivitySource"/> (stateless, so static as .NET's tracing expects) whose
/// spans OpenTelemetry exports when a deployment configures it (<c>telemetry:</c>). Per input: <c>queue_wait</c> (from
/// admission to its body pass, a child of the request's span); per pass: <c>body_pass</c> (linked to every request it
/// serves), with a <c>head_forward</c> and a <c>decode</c> child per head. Without a listener nothing is recorded.
/// </summary>
public static class ServingTelemetry
{
    public const string Name = "BertHost";

    public static readonly ActivitySource Source = new(Name);

    public const string QueueWait = "berthost.queue_wait";
    public const string BodyPass = "berthost.body_pass";
    public const string HeadForward = "berthost.head_forward";
    public const string Decode = "berthost.decode";
}
