using System.Net.Http.Headers;

namespace BertHost.Client;

// Training jobs: /v1/jobs. Submissions, cancellations and promotions change the host's state and are never retried.
public sealed partial class BertHostClient
{
    /// <summary>The multipart part holding a submission's JSON fields.</summary>
    private const string JobPart = "job";

    /// <summary><c>POST /v1/jobs</c> with the fields as JSON (data inline or by data-root name): the queued job (202).</summary>
    public Task<Job> SubmitJobAsync(JobRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SendAsync<Job>(HttpMethod.Post, "v1/jobs", Json(request), ErrorShape.Native, false, cancellationToken);
    }

    /// <summary>
    /// <c>POST /v1/jobs</c> as <c>multipart/form-data</c>: the fields as JSON in the part <c>job</c>, each upload streamed
    /// in a part named after the field it fills. The uploads' streams are closed when the call ends.
    /// </summary>
    public Task<Job> SubmitJobAsync(JobRequest request, IEnumerable<JobUpload> uploads, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(uploads);
        // Disposed with the request (its parts' streams with it), or here if a file cannot be opened.
        var form = new MultipartFormDataContent();
        try
        {
            form.Add(Json(request), JobPart);
            foreach (var upload in uploads)
            {
                var part = new StreamContent(upload.Open());
                part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                form.Add(part, upload.Field, upload.FileName);
            }
        }
        catch
        {
            form.Dispose();
            throw;
        }
        return SendAsync<Job>(HttpMethod.Post, "v1/jobs", form, ErrorShape.Native, false, cancellationToken);
    }

    /// <summary><c>GET /v1/jobs</c>: every job (history included), newest first; <paramref name="state"/> filters.</summary>
    public async Task<IReadOnlyList<Job>> ListJobsAsync(string? state = null, CancellationToken cancellationToken = default)
    {
        var path = state is null ? "v1/jobs" : "v1/jobs?state=" + Uri.EscapeDataString(state);
        return (await SendAsync<JobList>(HttpMethod.Get, path, null, ErrorShape.Native, true, cancellationToken).ConfigureAwait(false)).Jobs;
    }

    /// <summary><c>GET /v1/jobs/{id}</c>: the job's state, progress, per-epoch results and error.</summary>
    public Task<Job> GetJobAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync<Job>(HttpMethod.Get, "v1/jobs/" + Segment(id, nameof(id)), null, ErrorShape.Native, true, cancellationToken);

    /// <summary>
    /// <c>DELETE /v1/jobs/{id}</c>: a queued job is cancelled at once; a running one is asked to stop at its next batch
    /// (<see cref="Job.CancelRequested"/>); a finished one is 409 <c>conflict</c>.
    /// </summary>
    public Task<Job> CancelJobAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync<Job>(HttpMethod.Delete, "v1/jobs/" + Segment(id, nameof(id)), null, ErrorShape.Native, false, cancellationToken);

    /// <summary><c>POST /v1/jobs/{id}/promote</c> (admin scope): serves a succeeded job's output.</summary>
    public Task<Job> PromoteJobAsync(string id, CancellationToken cancellationToken = default) =>
        SendAsync<Job>(HttpMethod.Post, $"v1/jobs/{Segment(id, nameof(id))}/promote", Json(new { }), ErrorShape.Native, false, cancellationToken);

    /// <summary>
    /// Polls the job every <paramref name="pollInterval"/> (default 1 s) until it is finished — or interrupted (the host
    /// stopped while it ran; it resumes only when a host starts again); returns its last record.
    /// </summary>
    public async Task<Job> WaitForJobAsync(string id, TimeSpan? pollInterval = null, CancellationToken cancellationToken = default)
    {
        var interval = pollInterval ?? TimeSpan.FromSeconds(1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(interval, TimeSpan.Zero, nameof(pollInterval));
        while (true)
        {
            var job = await GetJobAsync(id, cancellationToken).ConfigureAwait(false);
            if (job.IsFinished || job.State == "interrupted") return job;
            await Task.Delay(interval, cancellationToken).ConfigureAwait(false);
        }
    }
}
