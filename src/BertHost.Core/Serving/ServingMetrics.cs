namespace BertHost.Core.Serving;
// TEMPORARY STUB (not committed): the real class comes from the HTTP branch.
public sealed class ServingMetrics
{
    public void RecordRequest(string route, string? head, int inputs) { }
    public void RecordResponse(string route, int statusCode, double seconds) { }
    public void RecordError(string? head, string code) { }
    public void RecordQueueTime(double seconds) { }
    public void RecordBatch(int rows, int realTokens, int paddedTokens, double bodySeconds) { }
    public void RecordHeadTime(string head, int rows, double seconds) { }
    public void SetHeadsReady(int ready, int failed) { }
}
