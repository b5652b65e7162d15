using System.Text.Json;
using BertHost.Core.Checkpoints;
using Microsoft.Extensions.Logging;

namespace BertHost.Core.Jobs;

/// <summary>One folder per job under the jobs directory, its record in <c>job.json</c> (written atomically: temp file + rename).</summary>
public sealed partial class JobStore(string directory, ILogger logger)
{
    public const string RecordFile = "job.json";

    public string Directory { get; } = Path.GetFullPath(directory);

    public string FolderOf(string id) => Path.Combine(Directory, id);

    public void Save(JobRecord record) =>
        AtomicFile.WriteAllText(Path.Combine(FolderOf(record.Id), RecordFile), JsonSerializer.Serialize(record, JobRecord.Json) + "\n");

    /// <summary>
    /// Deletes job folders without a record: submissions that were refused or cut off (the host stopped while a client
    /// was still uploading). Folders whose names start with '.' (the token cache) are not jobs and stay.
    /// </summary>
    public void RemoveAbandonedSubmissions()
    {
        if (!System.IO.Directory.Exists(Directory)) return;
        foreach (var folder in System.IO.Directory.EnumerateDirectories(Directory))
        {
            var name = Path.GetFileName(folder);
            if (name.StartsWith('.') || File.Exists(Path.Combine(folder, RecordFile)) || !JobIdPattern().IsMatch(name)) continue;
            try
            {
                System.IO.Directory.Delete(folder, recursive: true);
                logger.LogInformation("removed {Folder}: a submission that was never queued", folder);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                logger.LogWarning("cannot remove {Folder}, a submission that was never queued: {Reason}", folder, e.Message);
            }
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex("^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")]
    private static partial System.Text.RegularExpressions.Regex JobIdPattern();

    /// <summary>Every record in the directory, oldest first; a record that cannot be read is logged and skipped.</summary>
    public List<JobRecord> LoadAll()
    {
        var records = new List<JobRecord>();
        if (!System.IO.Directory.Exists(Directory)) return records;
        foreach (var folder in System.IO.Directory.EnumerateDirectories(Directory))
        {
            var path = Path.Combine(folder, RecordFile);
            if (!File.Exists(path)) continue;
            try
            {
                var record = JobRecord.FromJson(File.ReadAllText(path));
                if (record.Id != Path.GetFileName(folder)) throw new JsonException($"its id '{record.Id}' is not its folder's name");
                records.Add(record);
            }
            catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or NotSupportedException)
            {
                logger.LogError("job record {Path} cannot be read and is ignored: {Reason}", path, e.Message);
            }
        }
        return records.OrderBy(r => r.Created).ThenBy(r => r.Id, StringComparer.Ordinal).ToList();
    }
}
