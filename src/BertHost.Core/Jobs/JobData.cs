using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using BertHost.Core.Config;
using BertHost.Core.IO;
using BertHost.Core.Serving;
using BertHost.Core.Training;

namespace BertHost.Core.Jobs;

/// <summary>A file a client uploaded with a job submission (multipart), already stored in the job's folder under a name the host chose.</summary>
/// <param name="Path">Where the host stored it.</param>
/// <param name="ClientName">The file name the client sent (for messages and the record), or null.</param>
public sealed record UploadedFile(string Path, string? ClientName);

/// <summary>
/// Where a job's data comes from. A client never names a server path: a data field is either a name relative to one of
/// the deployment's <c>jobs.data_roots</c> (resolved through symlinks and checked to stay inside a root; only regular
/// files, at most <c>jobs.max_data_bytes</c>), or data sent with the submission — inline
/// (<c>{"content": "...", "name": "train.tsv"}</c>) or as a multipart file part named after the field — which is stored
/// in the job's folder under a name the host chooses. Messages name the field and the client's own name for the file,
/// never where it resolved to.
/// </summary>
public sealed class JobData(JobsSection settings, string jobFolder)
{
    /// <summary>The job's sub-folder holding what the client uploaded.</summary>
    public const string UploadFolder = "data";

    public const string FromUpload = "upload";
    public const string FromDataRoot = "data_root";

    // Extensions kept on stored uploads, so that format detection by extension works as for files on disk.
    private static readonly string[] KeptExtensions = [".tsv", ".csv", ".jsonl", ".json", ".ndjson", ".txt", ".conll", ".gz", ".xz"];

    public string UploadsFolder => Path.Combine(jobFolder, UploadFolder);

    /// <summary>The data file in <paramref name="field"/> (a root-relative name, inline content or an uploaded part), described for the record as <paramref name="role"/>.</summary>
    public TrainingDataFile? File(JobRequest request, string field, string role, bool required)
    {
        var uploads = request.Uploaded(field);
        var value = request.Raw(field);
        if (uploads is not null)
        {
            if (value is not null)
                throw Bad(request.Name(field), $"{request.Name(field)} is given both as a field and as an uploaded file; give one");
            if (uploads.Count != 1)
                throw Bad(request.Name(field), $"{request.Name(field)}: {uploads.Count} files were uploaded; this field takes one");
            return Uploaded(request.Name(field), role, uploads[0]);
        }
        if (value is not { } v)
            return required ? throw Bad(request.Name(field), $"{request.Name(field)} is required (a file name relative to a data root, or uploaded data)") : null;
        return One(request.Name(field), role, v, index: null);
    }

    /// <summary>One or more data files in <paramref name="field"/> (a name or inline data, or a list of them, or uploaded parts).</summary>
    public List<TrainingDataFile>? Files(JobRequest request, string field, string role, bool required)
    {
        var name = request.Name(field);
        var uploads = request.Uploaded(field);
        var value = request.Raw(field);
        if (uploads is not null && value is not null)
            throw Bad(name, $"{name} is given both as a field and as uploaded files; give one");
        if (uploads is not null) return uploads.Select((u, i) => Uploaded($"{name}[{i}]", role, u)).ToList();
        if (value is not { } v)
            return required ? throw Bad(name, $"{name} is required (file names relative to a data root, or uploaded data)") : null;
        if (v.ValueKind != JsonValueKind.Array) return [One(name, role, v, index: null)];
        var files = v.EnumerateArray().Select((item, i) => One(name, role, item, i)).ToList();
        return files.Count == 0 ? throw Invalid(name, $"{name} must not be empty") : files;
    }

    /// <summary>A model folder in <paramref name="field"/>: a name relative to a data root whose files are all regular files inside the roots.</summary>
    public (string Path, string Name)? Folder(JobRequest request, string field)
    {
        var name = request.Name(field);
        if (request.Uploaded(field) is not null) throw Bad(name, $"{name} names a model folder in a data root; it cannot be uploaded");
        if (request.Raw(field) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.String) throw Bad(name, $"{name} must be a string (a folder relative to a data root), got {JsonKinds.Describe(v.ValueKind)}");
        var text = v.GetString()!;
        var path = Resolve(name, text, folder: true);
        foreach (var entry in Directory.EnumerateFileSystemEntries(path))
        {
            if (Directory.Exists(entry) && RealPath.IsWithin(RealPath.Of(entry), path)) continue;
            var real = RealPath.Of(entry);
            if (!settings.DataRoots.Any(r => RealPath.IsWithin(real, r)) || !RegularFile.IsRegular(real))
                throw Invalid(name, $"{name}: '{text}/{System.IO.Path.GetFileName(entry)}' is not a regular file inside the data roots");
        }
        return (path, text);
    }

    private TrainingDataFile One(string field, string role, JsonElement value, int? index)
    {
        var at = index is { } i ? $"{field}[{i}]" : field;
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                var text = value.GetString()!;
                return Describe(at, role, Resolve(at, text, folder: false), text, FromDataRoot, settings.MaxDataBytes);
            case JsonValueKind.Object:
                return Inline(at, role, value, index);
            default:
                throw Bad(at, $"{at} must be a file name relative to a data root, or {{\"content\": \"...\", \"name\": \"...\"}}, got {JsonKinds.Describe(value.ValueKind)}");
        }
    }

    /// <summary>Inline data: <c>{"content": "the file's text", "name": "train.tsv"?}</c>, written to the job's folder.</summary>
    private TrainingDataFile Inline(string field, string role, JsonElement value, int? index)
    {
        string? content = null, clientName = null;
        foreach (var p in value.EnumerateObject())
        {
            switch (p.Name)
            {
                case "content":
                    content = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()
                        : throw Bad($"{field}.content", $"{field}.content must be a string (the file's text), got {JsonKinds.Describe(p.Value.ValueKind)}");
                    break;
                case "name":
                    clientName = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()
                        : throw Bad($"{field}.name", $"{field}.name must be a string, got {JsonKinds.Describe(p.Value.ValueKind)}");
                    break;
                default:
                    throw Bad($"{field}.{p.Name}", $"unknown field '{field}.{p.Name}'; inline data has content and name");
            }
        }
        if (string.IsNullOrWhiteSpace(content)) throw Invalid($"{field}.content", $"{field}.content is {(content is null ? "required" : "empty")}");
        var stored = StoredPath(role, index, clientName);
        Directory.CreateDirectory(UploadsFolder);
        System.IO.File.WriteAllText(stored, content, new UTF8Encoding(false));
        return Describe(field, role, stored, ClientName(clientName, field), FromUpload, long.MaxValue);
    }

    private TrainingDataFile Uploaded(string field, string role, UploadedFile upload)
    {
        if (!RealPath.IsWithin(System.IO.Path.GetFullPath(upload.Path), UploadsFolder))
            throw new InvalidOperationException($"uploads are stored in {UploadsFolder}, got {upload.Path}");
        return Describe(field, role, upload.Path, ClientName(upload.ClientName, field), FromUpload, long.MaxValue);
    }

    /// <summary>
    /// Stores an uploaded file part for <paramref name="field"/> in the job's folder and checks that a text file is
    /// UTF-8 (compressed corpora are checked when read). The caller bounds the whole upload's size.
    /// </summary>
    public async Task<UploadedFile> StoreAsync(string field, int index, string? clientName, Stream content, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(UploadsFolder);
        var path = StoredPath(field, index == 0 ? null : index, clientName);
        var compressed = ExtensionOf(clientName) is var ext && (ext.EndsWith(".gz", StringComparison.Ordinal) || ext.EndsWith(".xz", StringComparison.Ordinal));
        var decoder = compressed ? null : new UTF8Encoding(false, throwOnInvalidBytes: true).GetDecoder();
        var chars = new char[Encoding.UTF8.GetMaxCharCount(81920)];
        var buffer = new byte[81920];
        long offset = 0;
        await using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
        {
            int read;
            while ((read = await content.ReadAsync(buffer, cancellationToken)) > 0)
            {
                if (decoder is not null)
                {
                    try
                    {
                        decoder.GetChars(buffer, 0, read, chars, 0, flush: false);
                    }
                    catch (DecoderFallbackException e)
                    {
                        throw Bad(field, $"{field}: the uploaded file is not UTF-8 text (invalid bytes near byte {offset + Math.Max(0, e.Index)})");
                    }
                }
                offset += read;
                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            }
        }
        if (decoder is not null)
        {
            try
            {
                decoder.GetChars([], 0, 0, chars, 0, flush: true);
            }
            catch (DecoderFallbackException)
            {
                throw Bad(field, $"{field}: the uploaded file is not UTF-8 text (it ends inside a character)");
            }
        }
        return new UploadedFile(path, clientName);
    }

    /// <summary>Where an upload of <paramref name="role"/> is stored: <c>JOB/data/ROLE[-i][.ext]</c>, the extension kept from the client's name when it is one the readers know.</summary>
    public string StoredPath(string role, int? index, string? clientName)
    {
        var stem = new string(role.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray()).Trim('-') + (index is { } i ? $"-{i}" : "");
        var ext = ExtensionOf(clientName);
        var path = System.IO.Path.Combine(UploadsFolder, stem + ext);
        for (var n = 2; System.IO.File.Exists(path); n++) path = System.IO.Path.Combine(UploadsFolder, $"{stem}-{n}{ext}");
        return path;
    }

    private static string ExtensionOf(string? name)
    {
        if (name is null) return "";
        var file = System.IO.Path.GetFileName(name).ToLowerInvariant();
        var last = System.IO.Path.GetExtension(file);
        if (!KeptExtensions.Contains(last)) return "";
        if (last is ".gz" or ".xz")
        {
            var inner = System.IO.Path.GetExtension(System.IO.Path.GetFileNameWithoutExtension(file));
            return KeptExtensions.Contains(inner) && inner is not (".gz" or ".xz") ? inner + last : last;
        }
        return last;
    }

    /// <summary>The client's file name as records show it: its last component, without control characters, at most 200 characters.</summary>
    public static string ClientName(string? name, string field)
    {
        var file = name is null ? "" : System.IO.Path.GetFileName(name.Replace('\\', '/'));
        file = new string(file.Where(c => !char.IsControl(c)).Take(200).ToArray());
        return file.Length == 0 ? $"upload:{field}" : file;
    }

    /// <summary>
    /// A root-relative name resolved to the real path of an existing file (or folder) inside a data root. Refused with a
    /// 422 naming the field: absolute names, names that leave every root (by <c>..</c> or through a symlink), missing files.
    /// </summary>
    private string Resolve(string field, string name, bool folder)
    {
        if (settings.DataRoots.Count == 0)
            throw Invalid(field, $"{field}: this host reads no data files by name (jobs.data_roots is not set); upload the data with the submission instead");
        if (name.Trim().Length == 0) throw Invalid(field, $"{field} must not be empty");
        if (name.Contains('\0') || System.IO.Path.IsPathRooted(name) || name.StartsWith('~'))
            throw Invalid(field, $"{field}: '{name}' is not a relative name; name a file relative to a data root (jobs.data_roots)");
        var what = folder ? "folder" : "file";
        var lexicallyInside = false;
        foreach (var root in settings.DataRoots)
        {
            string candidate;
            try
            {
                candidate = System.IO.Path.GetFullPath(System.IO.Path.Combine(root, name));
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
            {
                throw Invalid(field, $"{field}: '{name}' is not a valid name");
            }
            if (!RealPath.IsWithin(candidate, root)) continue;
            lexicallyInside = true;
            if (!(folder ? Directory.Exists(candidate) : System.IO.File.Exists(candidate) || Directory.Exists(candidate))) continue;
            string real;
            try
            {
                real = RealPath.Of(candidate);
            }
            catch (IOException)
            {
                continue;
            }
            if (!settings.DataRoots.Any(r => RealPath.IsWithin(real, r)))
                throw Invalid(field, $"{field}: '{name}' leads outside the data roots");
            if (!folder && Directory.Exists(real)) throw Invalid(field, $"{field}: '{name}' is a folder, not a file");
            return real;
        }
        throw Invalid(field, lexicallyInside ? $"{field}: no {what} '{name}' in the data roots" : $"{field}: '{name}' is outside the data roots");
    }

    /// <summary>Size and sha256 of the file, read through <see cref="RegularFile"/> (FIFOs, devices and files over the limit are refused).</summary>
    private static TrainingDataFile Describe(string field, string role, string path, string name, string source, long maxBytes)
    {
        try
        {
            var (bytes, sha) = Hash(path, maxBytes);
            return new TrainingDataFile(role, path, bytes, sha, name, source);
        }
        catch (NotRegularFileException e)
        {
            throw Invalid(field, e.TooLarge
                ? $"{field}: '{name}' is too large: {e.Message} (jobs.max_data_bytes)"
                : $"{field}: '{name}' is {e.Message}; only regular files are read");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Invalid(field, $"{field}: '{name}' cannot be read");
        }
    }

    /// <summary>Bytes and sha256 of a regular file of at most <paramref name="maxBytes"/> bytes.</summary>
    public static (long Bytes, string Sha256) Hash(string path, long maxBytes = long.MaxValue)
    {
        using var stream = RegularFile.OpenRead(path, maxBytes);
        return (stream.Length, Convert.ToHexStringLower(SHA256.HashData(stream)));
    }

    private static ServingException Bad(string field, string message) => new(ServingError.BadRequest, message, field);

    private static ServingException Invalid(string field, string message) => new(ServingError.InvalidInput, message, field);
}

/// <summary>
/// A job being submitted: its identity and folder, where uploads are stored while the submission is read and checked.
/// Disposing it before it was queued deletes the folder, so a refused submission leaves nothing behind.
/// </summary>
public sealed class JobSubmission(JobIdentity identity) : IDisposable
{
    public JobIdentity Identity { get; } = identity;

    /// <summary>Where uploaded files go (<c>JOB/data</c>).</summary>
    public string UploadFolder => Path.Combine(Identity.Folder, JobData.UploadFolder);

    /// <summary>Set by the runner once the job is recorded and queued.</summary>
    internal bool Queued { get; set; }

    public void Dispose()
    {
        if (Queued) return;
        try
        {
            if (Directory.Exists(Identity.Folder)) Directory.Delete(Identity.Folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left for the next start's clean-up (a folder without job.json).
        }
    }
}
