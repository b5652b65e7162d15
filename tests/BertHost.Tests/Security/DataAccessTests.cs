using System.Diagnostics;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using BertHost.Core.Config;
using BertHost.Core.Jobs;
using BertHost.Core.Deployments;
using BertHost.Core.Serving;
using BertHost.Tests.Jobs;
using BertHost.Tests.Support;

namespace BertHost.Tests.Security;

/// <summary>
/// Findings "any file the host can read is exposed through POST /v1/jobs" and "device files and FIFOs hang it": job
/// data comes only from the data roots (regular files, symlinks resolved and re-checked) or from the submission
/// itself, and nothing a client reads quotes a file or names a server path.
/// </summary>
public sealed class DataAccessTests
{
    [DllImport("libc", SetLastError = true)]
    private static extern int mkfifo(string path, uint mode);

    private static async Task<(int Status, JsonNode Body)> Submit(JobsHost host, object job) => await host.PostAsync("/v1/jobs", job);

    /// <summary>Asserts a 422 naming <paramref name="field"/> whose message says <paramref name="says"/> and quotes nothing of the target.</summary>
    private static async Task ExpectRefused(JobsHost host, object job, string field, string says, params string[] notSaid)
    {
        // A device file or FIFO read as data would never end: the refusal must come without reading it.
        var (status, body) = await Waits.Within(Submit(host, job), "the job submission");
        Assert.True(status == 422, body.ToJsonString());
        Assert.Equal(field, (string?)body["error"]!["field"]);
        var message = (string)body["error"]!["message"]!;
        Assert.Contains(says, message);
        string[] leaks = ["root:", "PATH=", host.Folder, .. notSaid];
        foreach (var leak in leaks) Assert.DoesNotContain(leak, message);
    }

    [Fact]
    public async Task Absolute_parent_and_symlinked_paths_to_files_outside_the_data_roots_are_refused_without_reading_them()
    {
        await using var host = await JobsHost.StartAsync();
        File.CreateSymbolicLink(host.PathOf("passwd.tsv"), "/etc/passwd");
        File.CreateSymbolicLink(host.PathOf("environ.tsv"), "/proc/self/environ");
        Directory.CreateSymbolicLink(host.PathOf("etc"), "/etc");

        await ExpectRefused(host, new { head = "sentiment", train = "/etc/passwd" }, "train", "is not a relative name");
        await ExpectRefused(host, new { head = "sentiment", train = "/proc/self/environ" }, "train", "is not a relative name");
        await ExpectRefused(host, new { head = "sentiment", train = "../../../../../../etc/shadow" }, "train", "is outside the data roots");
        await ExpectRefused(host, new { head = "sentiment", train = "passwd.tsv" }, "train", "leads outside the data roots", "/etc");
        await ExpectRefused(host, new { head = "sentiment", train = "environ.tsv" }, "train", "leads outside the data roots", "/proc");
        await ExpectRefused(host, new { head = "sentiment", train = "etc/passwd" }, "train", "leads outside the data roots");
        await ExpectRefused(host, new { head = "sentiment", train = host.WriteData(4, 1), eval = "~/secrets.tsv" }, "eval", "is not a relative name");
        await ExpectRefused(host, new { kind = "pretrain", corpus = new[] { "passwd.tsv" }, config_size = "tiny" }, "corpus[0]", "leads outside the data roots");
        await ExpectRefused(host, new { kind = "pretrain", corpus = new[] { JobsHost.CorpusName }, from = "etc" }, "from", "leads outside the data roots");
        await ExpectRefused(host, new { kind = "pretrain", corpus = new[] { JobsHost.CorpusName }, from = "/usr/share" }, "from", "is not a relative name");
        Assert.Empty((await host.GetAsync("/v1/jobs")).Body["jobs"]!.AsArray());
    }

    [Fact]
    public async Task A_fifo_in_a_data_root_is_refused_at_once_instead_of_blocking_a_request_thread()
    {
        await using var host = await JobsHost.StartAsync();
        Assert.Equal(0, mkfifo(host.PathOf("pipe.tsv"), Convert.ToUInt32("600", 8)));
        await ExpectRefused(host, new { head = "sentiment", train = "pipe.tsv" }, "train", "is a FIFO (named pipe); only regular files are read");
        // The host still serves.
        Assert.Equal(200, (await host.GetAsync("/healthz")).Status);
    }

    [Fact]
    public void Devices_are_refused_by_type_even_inside_a_data_root_and_proc_files_by_being_outside_every_root()
    {
        using var folder = new TempFolder();
        var devices = new JobData(new JobsSection { Directory = folder.Path, DataRoots = ["/dev"] }, folder.Path);
        var request = new JobRequest(System.Text.Json.JsonDocument.Parse("""{"train": "zero", "eval": "null"}""").RootElement);
        var zero = Assert.Throws<ServingException>(() => devices.File(request, "train", "train", required: true));
        Assert.Equal(("train", "train: 'zero' is a character device; only regular files are read"), (zero.Field, zero.Message));
        Assert.Equal(ServingError.InvalidInput, zero.Error);

        // A data root holding a link to /proc is no way into it.
        Directory.CreateSymbolicLink(Path.Combine(folder.Path, "proc"), "/proc");
        var roots = new JobData(new JobsSection { Directory = folder.Path, DataRoots = [folder.Path] }, folder.Path);
        var environ = new JobRequest(System.Text.Json.JsonDocument.Parse("""{"train": "proc/self/environ"}""").RootElement);
        Assert.Equal("train: 'proc/self/environ' leads outside the data roots", Assert.Throws<ServingException>(() => roots.File(environ, "train", "train", true)).Message);

        // Larger than jobs.max_data_bytes: refused before it is read.
        File.WriteAllText(Path.Combine(folder.Path, "big.tsv"), new string('x', 2000));
        var small = new JobData(new JobsSection { Directory = folder.Path, DataRoots = [folder.Path], MaxDataBytes = 1000 }, folder.Path);
        var big = new JobRequest(System.Text.Json.JsonDocument.Parse("""{"train": "big.tsv"}""").RootElement);
        Assert.Equal("train: 'big.tsv' is too large: 2000 bytes, more than 1000 (jobs.max_data_bytes)", Assert.Throws<ServingException>(() => small.File(big, "train", "train", true)).Message);
    }

    [Fact]
    public async Task Without_data_roots_no_name_is_read_and_uploaded_data_trains_json_inline_or_multipart()
    {
        await using var host = await JobsHost.StartAsync("data_roots: [], promote: manual");
        var data = host.WriteData(8, seed: 2);
        await ExpectRefused(host, new { head = "sentiment", train = data }, "train", "this host reads no data files by name (jobs.data_roots is not set)");

        // Inline: the file's text in the JSON body.
        var text = File.ReadAllText(host.PathOf(data));
        var (status, queued) = await Submit(host, new { head = "sentiment", train = new { content = text, name = "../../etc/my train.jsonl" }, epochs = 1 });
        Assert.True(status == 202, queued.ToJsonString());
        var id = (string)queued["id"]!;
        var file = Assert.Single(queued["data"]!.AsArray())!;
        Assert.Equal(("train", "my train.jsonl", "upload"), ((string)file["role"]!, (string)file["name"]!, (string)file["source"]!));
        Assert.Equal(JobData.Hash(host.PathOf(data)).Sha256, (string)file["sha256"]!);
        // Stored in the job's folder under the host's own name, whatever the client called it.
        Assert.True(File.Exists(Path.Combine(host.JobFolder(id), "data", "train.jsonl")));
        Assert.False((bool)(await host.WaitForStateAsync(id, JobStates.Succeeded))["promoted"]!);

        // Multipart: the JSON in a part named job, the file in a part named after its field.
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent("""{"head": "sentiment", "epochs": 1}""", Encoding.UTF8, "application/json"), "job");
        form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes(text)), "train", "train.jsonl");
        form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes(text)), "eval", "held-out.jsonl");
        using var response = await host.Client.PostAsync("/v1/jobs", form);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.True((int)response.StatusCode == 202, body.ToJsonString());
        Assert.Equal(["train.jsonl", "held-out.jsonl"], body["data"]!.AsArray().Select(d => (string)d!["name"]!));
        var second = (string)body["id"]!;
        Assert.Equal(JobStates.Succeeded, (string)(await host.WaitForStateAsync(second, JobStates.Succeeded))["state"]!);

        // A malformed record of uploaded data is the client's own: its reason is shown, by the client's file name.
        var (badStatus, bad) = await Submit(host, new { head = "sentiment", train = new { content = text + "{\"text\": 3, \"label\": \"positive\"}\n", name = "mine.jsonl" }, epochs = 1 });
        Assert.Equal(202, badStatus);
        var failed = await host.WaitForStateAsync((string)bad["id"]!, JobStates.Failed);
        Assert.StartsWith("mine.jsonl:9: ", (string)failed["error"]!);
        Assert.DoesNotContain(host.Folder, failed.ToJsonString());
    }

    [Theory]
    [InlineData("train", "notes.txt", "bad \xff bytes", 400, "the uploaded file is not UTF-8 text")]
    [InlineData("model", "x.tsv", "a\tb", 400, "unknown part 'model'")]
    public async Task Multipart_parts_are_checked(string part, string fileName, string content, int status, string says)
    {
        await using var host = await JobsHost.StartAsync();
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent("""{"head": "sentiment"}""", Encoding.UTF8, "application/json"), "job");
        form.Add(new ByteArrayContent(Encoding.Latin1.GetBytes(content)), part, fileName);
        using var response = await host.Client.PostAsync("/v1/jobs", form);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.True((int)response.StatusCode == status, body.ToJsonString());
        Assert.Contains(says, (string)body["error"]!["message"]!);
        Assert.Equal(part, (string?)body["error"]!["field"]);
        // A refused submission leaves nothing behind.
        Assert.Empty(Directory.Exists(host.JobsDirectory) ? Directory.GetDirectories(host.JobsDirectory).Where(d => !Path.GetFileName(d).StartsWith('.')) : []);
    }

    [Fact]
    public async Task An_upload_over_the_limit_is_413()
    {
        await using var host = await JobsHost.StartAsync("max_upload_bytes: 2048");
        var (status, body) = await Submit(host, new { head = "sentiment", train = new { content = new string('x', 4096) } });
        Assert.True(status == 413, body.ToJsonString());
        Assert.Equal("request body is larger than 2048 bytes", (string)body["error"]!["message"]!);
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent("""{"head": "sentiment"}""", Encoding.UTF8, "application/json"), "job");
        form.Add(new ByteArrayContent(new byte[8192]), "train", "big.tsv");
        using var response = await host.Client.PostAsync("/v1/jobs", form);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 413, text);
        Assert.Equal("payload_too_large", (string)JsonNode.Parse(text)!["error"]!["code"]!);
    }

    [Fact]
    public async Task Every_field_is_checked_at_submission_including_the_data_format_and_job_responses_name_no_server_path()
    {
        await using var host = await JobsHost.StartAsync();
        var data = host.WriteData(4, seed: 3);
        var (status, body) = await Submit(host, new { head = "sentiment", train = data, format = "exe" });
        Assert.True(status == 422, body.ToJsonString());
        Assert.Equal(("format", "format 'exe' is not one the head sentiment reads (glue-tsv, jsonl)"), ((string?)body["error"]!["field"], (string)body["error"]!["message"]!));
        (status, body) = await Submit(host, new { head = "sentiment", train = new { content = "x", nmae = "a" } });
        Assert.Equal((400, "train.nmae"), (status, (string?)body["error"]!["field"]));

        var id = await host.SubmitAsync(new { head = "sentiment", train = data, epochs = 1 });
        var job = await host.WaitForStateAsync(id, JobStates.Succeeded);
        var (_, heads) = await host.GetAsync("/v1/heads");
        var (_, bodyInfo) = await host.GetAsync("/v1/body");
        var (_, head) = await host.GetAsync("/v1/heads/sentiment");
        foreach (var text in new[] { job.ToJsonString(), heads.ToJsonString(), bodyInfo.ToJsonString(), head.ToJsonString() })
        {
            Assert.DoesNotContain(host.Folder, text);
            Assert.DoesNotContain(TestPaths.RepoRoot, text);
            Assert.DoesNotMatch("\"/(?!v1/)", text);
        }
        Assert.Equal("BertHost.Heads.Classification.dll", (string)heads["heads"]![0]!["plugin"]!);
        Assert.Equal("tiny-bert", (string)bodyInfo["model_folder"]!);
    }

    [Fact]
    public async Task Jobs_are_off_unless_enabled_and_outputs_serve_only_when_promoted_by_default()
    {
        await using (var off = await JobsHost.StartAsync("enabled: false"))
        {
            // (The test host runs a job runner anyway; serve starts none: ServeCommand only with jobs.enabled.)
            Assert.False(off.Engine.Config.Jobs.Enabled);
        }
        await using var host = await JobsHost.StartAsync("promote: manual, body_swap: manual");
        var before = await host.PredictAsync("sentiment", "happy dog");
        var id = await host.SubmitAsync(new { head = "sentiment", train = host.WriteData(16, seed: 4), epochs = 2, learning_rate = 0.05 });
        var job = await host.WaitForStateAsync(id, JobStates.Succeeded);
        Assert.False((bool)job["promoted"]!);
        Assert.Equal(before, await host.PredictAsync("sentiment", "happy dog"));
        Assert.False(File.Exists(Path.Combine(host.JobsDirectory, Promotions.FileName)));
    }

    [Fact]
    public async Task Temporary_files_of_interrupted_writes_and_abandoned_submissions_are_removed_at_start()
    {
        await using var host = await JobsHost.StartAsync();
        var id = await host.SubmitAsync(new { head = "sentiment", train = host.WriteData(4, seed: 5), epochs = 1, promote = false });
        await host.WaitForStateAsync(id, JobStates.Succeeded);
        var folder = host.JobFolder(id);
        var guid = Guid.NewGuid().ToString("N");
        string[] leftovers =
        [
            Path.Combine(folder, "checkpoint", $".checkpoint-00000004-{guid}.safetensors.{Guid.NewGuid():N}.tmp"),
            Path.Combine(folder, $".job.json.{guid}.tmp"),
            Path.Combine(host.JobsDirectory, $".promoted.json.{guid}.tmp"),
        ];
        foreach (var file in leftovers)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, "partial");
        }
        var tempFolder = Directory.CreateDirectory(Path.Combine(folder, $"head.tmp-{guid}")).FullName;
        var kept = Directory.CreateDirectory(Path.Combine(folder, $"head.old-{guid}")).FullName;
        var abandoned = Directory.CreateDirectory(Path.Combine(host.JobsDirectory, "20260101-000000-abcdef", "data")).FullName;
        File.WriteAllText(Path.Combine(abandoned, "train.tsv"), "x\t1");

        await host.RestartAsync();
        foreach (var file in leftovers) Assert.False(File.Exists(file), file);
        Assert.False(Directory.Exists(tempFolder));
        Assert.False(Directory.Exists(Path.GetDirectoryName(abandoned)));
        Assert.True(Directory.Exists(kept), "a previous version kept by a folder swap is what a crash recovers: it stays");
        Assert.Equal(JobStates.Succeeded, (string)(await host.GetAsync($"/v1/jobs/{id}")).Body["state"]!);
    }
}

/// <summary>A temp folder removed at the end of a test.</summary>
internal sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("berthost-security-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Finding "absolute server paths in errors, /v1/heads and /v1/body; failed heads show .NET exception names".</summary>
public sealed class ClientPathsTests
{
    [Fact]
    public void Messages_lose_server_paths_and_exception_type_names_but_keep_routes_and_relative_names()
    {
        var config = Path.Combine(Path.GetTempPath(), "deploy");
        Assert.Equal("plugin Foo.dll could not be loaded: a bug (jobs/1/head)",
            Core.IO.ClientPaths.Redact($"plugin {TestPaths.RepoRoot}/plugins/Foo/bin/Foo.dll could not be loaded: NullReferenceException: a bug ({config}/jobs/1/head)", config));
        Assert.Equal("failed to create head 'broken': boom; threw boom", Core.IO.ClientPaths.Redact("failed to create head 'broken': System.InvalidOperationException: boom; threw IOException boom", config));
        Assert.Equal("no route GET /v1/heads/x; send application/json", Core.IO.ClientPaths.Redact("no route GET /v1/heads/x; send application/json", config));
    }

    [Fact]
    public async Task Heads_body_and_errors_show_names_not_paths_nor_exception_types()
    {
        var engine = new Api.FakeEngine();
        engine.HeadList.Add(new() { Name = "bad", Kind = "k", State = "failed", Plugin = $"{TestPaths.RepoRoot}/plugins/Bad/Bad.dll",
            Error = $"failed to create head 'bad': NullReferenceException: oops in {TestPaths.RepoRoot}/plugins/Bad/Bad.dll" });
        engine.Throw = new ServingException(ServingError.Unavailable, $"head 'x' failed while serving: IOException: cannot read {TestPaths.RepoRoot}/secret.bin");
        await using var server = await Api.ApiTestServer.StartAsync(engine: engine);
        var heads = await server.Client.GetStringAsync("/v1/heads");
        Assert.Contains("\"plugin\":\"Bad.dll\"", heads);
        Assert.Contains("\"error\":\"failed to create head 'bad': oops in Bad.dll\"", heads);
        using var response = await server.PostJsonAsync("/v1/heads/sentiment/predict", """{"inputs": ["a"]}""");
        Assert.Equal("head 'x' failed while serving: cannot read secret.bin",
            await Api.ApiTestServer.AssertErrorAsync(response, System.Net.HttpStatusCode.ServiceUnavailable, "unavailable"));
    }
}
