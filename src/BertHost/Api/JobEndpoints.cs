using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using BertHost.Core.Config;
using BertHost.Core.Jobs;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace BertHost.Api;

/// <summary>
/// The <c>/v1/jobs</c> routes over the host's <see cref="JobRunner"/> (404 <c>jobs_disabled</c> when the deployment
/// does not enable jobs). A submission is a JSON object, or <c>multipart/form-data</c> with the JSON in a part named
/// <c>job</c> and data files in parts named after the fields they fill (<c>train</c>, <c>eval</c>, <c>corpus</c>,
/// <c>config</c>, <c>tasks[0].train</c>, ...), streamed into the job's folder under names the host chooses.
/// </summary>
internal sealed partial class JobEndpoints(JobRunner? jobs, ApiOptions options, ILogger logger)
{
    /// <summary>The multipart part holding the submission's JSON fields.</summary>
    public const string JobPart = "job";

    [GeneratedRegex(@"^(train|eval|corpus|config|tasks\[[0-9]{1,3}\]\.(train|eval))$")]
    private static partial Regex DataPart();

    public async Task SubmitAsync(HttpContext context)
    {
        var runner = Runner();
        // Uploads may be larger than a predict request: this route has its own limit.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = ApiServer.BodySizeBackstop(options.MaxUploadBytes);
        using var submission = runner.BeginSubmission(ApiKeyAuthenticationHandler.KeyOf(context), ApiKeyAuthenticationHandler.Has(context, Scopes.Admin));
        JsonElement fields;
        var uploads = new Dictionary<string, List<UploadedFile>>(StringComparer.Ordinal);
        if (IsMultipart(context.Request.ContentType, out var boundary))
        {
            fields = await ReadMultipartAsync(context, boundary, submission, uploads);
        }
        else
        {
            fields = await JsonRequestReader.ReadAsync(context, options.MaxUploadBytes);
        }
        var record = runner.Submit(submission, fields, uploads);
        var id = (string)record["id"]!;
        context.Response.Headers.Location = $"/v1/jobs/{id}";
        await WriteAsync(context, StatusCodes.Status202Accepted, WithLinks(record));
    }

    private static bool IsMultipart(string? contentType, out string boundary)
    {
        boundary = "";
        if (contentType is null || !MediaTypeHeaderValue.TryParse(contentType, out var media)
            || !media.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)) return false;
        boundary = HeaderUtilities.RemoveQuotes(media.Boundary).Value ?? "";
        if (boundary.Length is 0 or > 200) throw ApiException.BadRequest("multipart/form-data needs a boundary parameter (at most 200 characters)");
        return true;
    }

    /// <summary>Reads the parts: the <c>job</c> JSON, and each data file streamed to the job's folder (every part counted against the upload limit).</summary>
    private async Task<JsonElement> ReadMultipartAsync(HttpContext context, string boundary, JobSubmission submission, Dictionary<string, List<UploadedFile>> uploads)
    {
        var reader = new MultipartReader(boundary, context.Request.Body) { BodyLengthLimit = options.MaxUploadBytes };
        var data = new JobData(jobs!.Settings, submission.Identity.Folder);
        JsonElement? fields = null;
        try
        {
            for (var section = await reader.ReadNextSectionAsync(context.RequestAborted); section is not null; section = await reader.ReadNextSectionAsync(context.RequestAborted))
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                    || !disposition.DispositionType.Equals("form-data", StringComparison.OrdinalIgnoreCase))
                    throw ApiException.BadRequest("every part of a multipart job needs Content-Disposition: form-data; name=\"...\"");
                var name = HeaderUtilities.RemoveQuotes(disposition.Name).Value ?? "";
                if (name == JobPart)
                {
                    if (fields is not null) throw ApiException.BadRequest($"the '{JobPart}' part is given twice", JobPart);
                    JsonRequestReader.CheckMediaType(section.ContentType ?? "application/json");
                    using var buffer = new MemoryStream();
                    await section.Body.CopyToAsync(buffer, context.RequestAborted);
                    fields = JsonRequestReader.Parse(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), $"'{JobPart}' part");
                }
                else if (DataPart().IsMatch(name))
                {
                    var clientName = HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).Value;
                    var list = uploads.TryGetValue(name, out var l) ? l : uploads[name] = [];
                    list.Add(await data.StoreAsync(name, list.Count, clientName, section.Body, context.RequestAborted));
                }
                else
                {
                    throw ApiException.BadRequest(
                        $"unknown part '{name}' (parts: {JobPart} with the JSON fields; train, eval, corpus, config, tasks[i].train, tasks[i].eval with data)", name);
                }
            }
        }
        catch (InvalidDataException e) when (e.Message.Contains("limit", StringComparison.OrdinalIgnoreCase))
        {
            throw JsonRequestReader.TooLarge(options.MaxUploadBytes);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw JsonRequestReader.TooLarge(options.MaxUploadBytes);
        }
        catch (IOException e) when (e is not EndOfStreamException && !context.RequestAborted.IsCancellationRequested)
        {
            logger.LogDebug(e, "multipart job submission could not be read");
            throw ApiException.BadRequest("the multipart body is malformed or cut off");
        }
        return fields ?? throw ApiException.BadRequest($"a multipart job needs a '{JobPart}' part with the JSON fields (e.g. {{\"head\": \"sentiment\"}})", JobPart);
    }

    public Task ListAsync(HttpContext context)
    {
        var state = context.Request.Query["state"].ToString();
        foreach (var key in context.Request.Query.Keys.Where(k => k != "state"))
            throw ApiException.BadRequest($"unknown query parameter '{key}' (GET /v1/jobs takes state)", key);
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
        var (record, stopped) = Runner().Cancel(Id(context), ApiKeyAuthenticationHandler.KeyOf(context));
        return WriteAsync(context, stopped ? StatusCodes.Status200OK : StatusCodes.Status202Accepted, WithLinks(record));
    }

    public async Task PromoteAsync(HttpContext context)
    {
        var record = await Runner().PromoteAsync(Id(context), ApiKeyAuthenticationHandler.KeyOf(context));
        await WriteAsync(context, StatusCodes.Status200OK, WithLinks(record));
    }

    private JobRunner Runner() => jobs ?? throw new ApiException(StatusCodes.Status404NotFound, ApiErrorCodes.JobsDisabled,
        "training jobs are disabled on this host: the deployment's jobs section needs enabled: true");

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
