using BertHost.Core.Config;

namespace BertHost.Tests.Config;

/// <summary>The <c>jobs:</c> section: defaults, paths and the problems it reports.</summary>
public sealed class JobsConfigTests : IDisposable
{
    private readonly ConfigFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private const string Body = "body: { checkpoint: ../models/bert }\n";

    [Fact]
    public void Without_a_jobs_section_jobs_are_off_and_would_promote_nothing_by_themselves()
    {
        var jobs = _folder.Load(Body).Jobs;
        Assert.False(jobs.Enabled);
        Assert.Equal(Path.Combine(_folder.ConfigDir, "jobs"), jobs.Directory);
        Assert.Equal(1, jobs.MaxConcurrent);
        Assert.True(jobs.ResumeInterrupted);
        Assert.Equal("manual", jobs.BodySwap);
        Assert.Equal("manual", jobs.Promote);
        Assert.Empty(jobs.DataRoots);
        // A jobs section alone does not turn them on either: enabled: true does.
        Assert.False(_folder.Load(Body + "jobs: { max_concurrent: 2 }\n").Jobs.Enabled);
    }

    [Fact]
    public void Every_key_is_read_and_the_directory_and_data_roots_resolve_against_the_config_file()
    {
        Directory.CreateDirectory(_folder.PathOf("data/sst2"));
        var jobs = _folder.Load(Body + "jobs: { enabled: true, directory: ../state/jobs, max_concurrent: 2, resume_interrupted: false, body_swap: auto, promote: auto, data_roots: [../data, ../data/sst2], max_upload_bytes: 1000, max_data_bytes: 2000 }\n").Jobs;
        Assert.True(jobs.Enabled);
        Assert.Equal(_folder.PathOf("state/jobs"), jobs.Directory);
        Assert.Equal(2, jobs.MaxConcurrent);
        Assert.False(jobs.ResumeInterrupted);
        Assert.Equal("auto", jobs.BodySwap);
        Assert.Equal("auto", jobs.Promote);
        Assert.Equal([_folder.PathOf("data"), _folder.PathOf("data/sst2")], jobs.DataRoots);
        Assert.Equal((1000, 2000), (jobs.MaxUploadBytes, jobs.MaxDataBytes));
    }

    [Fact]
    public void Bad_values_are_reported_with_their_line_and_path()
    {
        File.WriteAllText(_folder.PathOf("config/afile"), "x");
        var e = _folder.Fail(Body + """
            jobs:
              directory: afile
              max_concurrent: 0
              resume_interrupted: maybe
              body_swap: sometimes
              body-swap: auto
              data_roots: [nowhere]
            """);
        Assert.Equal(
        [
            new ConfigProblem(3, 14, "jobs.directory", $"{_folder.PathOf("config/afile")} is a file; expected a folder for the jobs' records and outputs"),
            new ConfigProblem(4, 19, "jobs.max_concurrent", "must be positive, got 0"),
            new ConfigProblem(5, 23, "jobs.resume_interrupted", "must be true or false, got 'maybe'"),
            new ConfigProblem(6, 14, "jobs.body_swap", "must be auto or manual, got 'sometimes'"),
            new ConfigProblem(7, 3, "jobs.body-swap", "unknown key 'body-swap' (did you mean 'body_swap'?)"),
            new ConfigProblem(8, 15, "jobs.data_roots[0]", $"folder not found: {_folder.PathOf("config/nowhere")}"),
        ], e.Problems);
    }
}
