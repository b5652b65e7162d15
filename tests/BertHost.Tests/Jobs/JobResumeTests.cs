using System.Text.Json.Nodes;
using BertHost.Core.Jobs;
using BertHost.Tests.Training;

namespace BertHost.Tests.Jobs;

/// <summary>
/// A job whose host dies mid-run resumes from its checkpoint in the next host and ends with the same epochs as an
/// uninterrupted job. Seeded runs compared bit for bit: alone, after the parallel tests (torch has one generator).
/// </summary>
[Collection(SeededTorchCollection.Name)]
public sealed class JobResumeTests
{
    [Fact]
    public async Task A_job_killed_after_two_epochs_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_one()
    {
        await using var host = await JobsHost.StartAsync();
        var data = host.WriteData(24, seed: 10);
        // promote: false, so both jobs start from the same (fresh) head.
        var job = new { head = "sentiment", train = data, eval = data, epochs = 5, batch_size = 4, learning_rate = 0.01, seed = 3, promote = false };

        var reference = await host.SubmitAsync(job);
        var uninterrupted = await host.WaitForStateAsync(reference, JobStates.Succeeded);

        // The process "dies" at the end of epoch 2: the record on disk still says running.
        var killed = await host.SubmitAndKillAtAsync(job, 2);
        var onDisk = JobRecord.FromJson(File.ReadAllText(Path.Combine(host.JobsDirectory, killed, JobStore.RecordFile)));
        Assert.Equal(JobStates.Running, onDisk.State);
        Assert.Equal([1, 2], onDisk.EpochResults.Select(e => e.Epoch));

        await host.RestartAsync();
        var resumed = await host.WaitForStateAsync(killed, JobStates.Succeeded);
        Assert.Equal(1, (int)resumed["interruptions"]!);
        Assert.Equal(3, (int)resumed["resumed_from"]!["epoch"]!);
        Assert.Equal(0, (int)resumed["resumed_from"]!["step"]!);
        Assert.Equal(Epochs(uninterrupted), Epochs(resumed));
        Assert.Equal(uninterrupted["best_metrics"]!.ToJsonString(), resumed["best_metrics"]!.ToJsonString());
        Assert.False(Directory.Exists(Path.Combine(host.JobFolder(killed), "checkpoint")));
        // The saved heads are the same weights.
        Assert.Equal(File.ReadAllBytes(Path.Combine(host.JobFolder(reference), "head", "head.safetensors")),
            File.ReadAllBytes(Path.Combine(host.JobFolder(killed), "head", "head.safetensors")));
    }

    /// <summary>Epoch, loss and metrics of every epoch (not the seconds).</summary>
    private static List<string> Epochs(JsonNode job) => job["epoch_results"]!.AsArray()
        .Select(e => $"{(int)e!["epoch"]!} {(double)e["loss"]!:R} {e["metrics"]!.ToJsonString()}").ToList();
}
