using System.Text.Json.Nodes;
using BertHost.Core.Jobs;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Http;

namespace BertHost.Api;

/// <summary>The <c>/v1/jobs</c> routes over the host's <see cref="JobRunner"/> (503 when the host runs none).</summary>
internal sealed class JobEndpoints(JobRunner? jobs, ApiOptions options)
{
    public async Task SubmitAsync(HttpContext context)
    {
        var runner = Runner();
        var root = await JsonRequestReader.ReadAsync(context, options.MaxRequestBytes);
        var record = runner.Submit(root);
        var id = (string)record["id"]!;
        context.Response.Headers.Location = $"/v1/jobs/{id}";
        await WriteAsync(context, StatusCodes.Status202Accepted, WithLinks(record));
    }

    public Task ListAsync(HttpContext context)
    {
        var state = context.Request.Query["state"].ToString();
        var list = Runner().List(state.Length == 0 ? null : state);
        var array = new JsonArray();
        foreach (var record in list) array.Add(WithLinks(record));
        return WriteAsync(context, StatusCodes.Status200OK, new JsonObject { ["jobs"] = array });
    }

    public Task GetAsync(HttpContext context)
    {
        var id = Id(context);
        var record = Runner().Snapshot(id) ?? throw NotFound(id);
        return WriteAsync(context, StatusCodes.Status200OK, WithLinks(record));
    }

    /// <summary>Cancels: 200 when the job has stopped (it was queued), 202 when a running job was asked to stop.</summary>
    public Task CancelAsync(HttpContext context)
    {
        var (record, stopped) = Runner().Cancel(Id(context));
        return WriteAsync(context, stopped ? StatusCodes.Status200OK : StatusCodes.Status202Accepted, WithLinks(record));
    }

    public async Task PromoteAsync(HttpContext context)
    {
        var record = await Runner().PromoteAsync(Id(context));
        await WriteAsync(context, StatusCodes.Status200OK, WithLinks(record));
    }

    private JobRunner Runner() =>
        jobs ?? throw new ServingException(ServingError.Unavailable, "this host runs no training jobs");

    private static string Id(HttpContext context) => context.Request.RouteValues["id"] as string ?? "";

    private static ServingException NotFound(string id) => new(ServingError.NotFound, $"no job with id '{id}'");

    private static JsonObject WithLinks(JsonObject record)
    {
        var self = $"/v1/jobs/{(string)record["id"]!}";
        record["links"] = new JsonObject { ["self"] = self, ["cancel"] = self, ["promote"] = self + "/promote" };
        return record;
    }

    private static Task WriteAsync(HttpContext context, int status, JsonObject body) =>
        ApiResponses.WriteJsonAsync(context, status, w => body.WriteTo(w));
}
