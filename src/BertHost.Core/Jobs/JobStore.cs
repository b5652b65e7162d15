using System.Text.Json;
using BertHost.Core.Checkpoints;
using Microsoft.Extensions.Logging;

namespace BertHost.Core.Jobs;

/// <summary>One folder per job under the jobs directory, its record in <c>job.json</c> (written atomically: temp file + rename).</summary>
public sealed class JobStore(string directory, ILogger logger)
{
    public const string RecordFile = "job.json";

    public string Directory { get; } = Path.GetFullPath(directory);

    public string FolderOf(string id) => Path.Combine(Directory, id);

    public void Save(JobRecord record) =>
        AtomicFile.WriteAllText(Path.Combine(FolderOf(record.Id), RecordFile), JsonSerializer.Serialize(record, JobRecord.Json) + "\n");

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
