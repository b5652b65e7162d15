using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using BertHost.Core.Plugins;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

using BertHost.Core.Body;

namespace BertHost.Core.Config;

/// <summary>Walks one YAML document, collecting every problem; see <see cref="HostConfigLoader"/>.</summary>
internal sealed partial class ConfigReader(string sourcePath, Func<string, string?> environment, bool tolerateHeadPluginProblems = false,
    IHeadConfigValidator? headValidator = null)
{
    internal static readonly string[] TopKeys = ["host", "body", "batching", "jobs", "auth", "telemetry", "protocols", "heads"];
    internal static readonly string[] TelemetryKeys = ["otlp_endpoint", "otlp_protocol", "service_name"];
    internal static readonly string[] OtlpProtocols = ["grpc", "http/protobuf"];
    internal static readonly string[] ProtocolsKeys = ["embed_head", "rerank_head"];
    internal static readonly string[] HostKeys =
    [
        "urls", "max_request_bytes", "max_inputs_per_request", "oversized", "shutdown_timeout_seconds", "max_input_tokens",
        "max_request_tokens", "request_timeout_seconds", "max_response_bytes", "allowed_hosts", "cors", "https",
    ];
    internal static readonly string[] CorsKeys = ["origins"];
    internal static readonly string[] HttpsKeys = ["certificate", "key_file", "password", "client_certificates", "client_ca"];
    internal static readonly string[] AuthKeys = ["keys", "allow_anonymous", "anonymous_scopes"];
    internal static readonly string[] KeyKeys = ["id", "sha256", "key", "key_file", "scopes"];
    internal static readonly string[] ClientCertificateModes = ["none", "allow", "require"];
    internal static readonly string[] BodyKeys = ["checkpoint", "device", "dtype", "max_sequence_length", "prepack_weights", "attention_kernel", "quantize", "quantize_exclude"];
    internal static readonly string[] BatchingKeys = ["max_batch_tokens", "max_batch_requests", "max_wait_ms", "max_queued_inputs", "max_queued_tokens"];
    internal static readonly string[] JobsKeys =
    [
        "enabled", "directory", "max_concurrent", "resume_interrupted", "body_swap", "promote", "data_roots", "max_upload_bytes", "max_data_bytes",
    ];
    internal static readonly string[] HeadKeys = ["name", "kind", "plugin", "sha256", "labels", "weights", "options", "required"];

    internal static readonly string[] DTypes = ["float32", "bfloat16", "float16"];
    internal static readonly string[] OversizedModes = ["truncate", "refuse"];
    internal static readonly string[] BodySwapModes = ["auto", "manual"];

    /// <summary>Shortest API key accepted in clear (<c>key</c>, <c>key_file</c>): long enough not to be guessed.</summary>
    internal const int MinKeyLength = 16;

    private readonly record struct Entry(YamlScalarNode Key, YamlNode Value);

    private readonly string _baseDir = Path.GetDirectoryName(Path.GetFullPath(sourcePath))!;
    private readonly List<ConfigProblem> _problems = [];

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    private static partial Regex HeadNamePattern();

    [GeneratedRegex("^(auto|cpu|cuda|cuda:[0-9]+)$")]
    private static partial Regex DevicePattern();

    [GeneratedRegex("^[0-9a-fA-F]{64}$")]
    private static partial Regex Sha256Pattern();

    [GeneratedRegex(@"^\(Line: \d+, Col: \d+, Idx: \d+\) - \(Line: \d+, Col: \d+, Idx: \d+\):\s*")]
    private static partial Regex YamlMarkPrefix();

    [GeneratedRegex("^LABEL_([0-9]+)$")]
    private static partial Regex GenericLabel();

    public HostConfig Read(string yaml)
    {
        var root = LoadDocument(yaml);
        if (root is null) throw Failure();

        var top = Entries(root, "", TopKeys, "the top level") ?? [];
        var host = ReadHost(top);
        var body = ReadBody(top, root);
        _body = body;
        var batching = ReadBatching(top);
        var jobs = ReadJobs(top);
        var auth = ReadAuth(top);
        CheckBinding(top, host, auth);
        var telemetry = ReadTelemetry(top);
        var heads = ReadHeads(top);
        var protocols = ReadProtocols(top, heads);

        if (_problems.Any(p => !(tolerateHeadPluginProblems && p.HeadPluginOnly)) || body is null) throw Failure();
        return new HostConfig
        {
            SourcePath = Path.GetFullPath(sourcePath),
            HeadPluginProblems = _problems.Select(p => p.Format(sourcePath)).ToList(),
            Host = host,
            Body = body,
            Batching = batching,
            Jobs = jobs,
            Auth = auth,
            Telemetry = telemetry,
            Protocols = protocols,
            Heads = heads,
        };
    }

    /// <summary>The body section as read (null when it has problems), for the head validator.</summary>
    private BodySection? _body;

    private ConfigException Failure() =>
        new(sourcePath, _problems.OrderBy(p => p.Line).ThenBy(p => p.Column).ToList());

    private void Add(YamlNode node, string path, string message, bool headPluginOnly = false) =>
        _problems.Add(new ConfigProblem((int)node.Start.Line, (int)node.Start.Column, path, message) { HeadPluginOnly = headPluginOnly });

    private static string Join(string path, string key) => path.Length == 0 ? key : $"{path}.{key}";

    // ---- document ------------------------------------------------------------------------------------------------

    private YamlNode? LoadDocument(string yaml)
    {
        var stream = new YamlStream();
        var parser = new TrackingParser(new Parser(new StringReader(yaml)));
        try
        {
            stream.Load(parser);
        }
        catch (YamlException e)
        {
            var message = YamlMarkPrefix().Replace(e.Message, "");
            if (e.InnerException is { } inner && !string.IsNullOrWhiteSpace(inner.Message) && !message.Contains(inner.Message, StringComparison.Ordinal))
                message += $" ({inner.Message})";
            _problems.Add(new ConfigProblem((int)e.Start.Line, (int)e.Start.Column, "", $"invalid YAML: {message}"));
            return null;
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or IndexOutOfRangeException)
        {
            // YamlDotNet's scanner fails this way on some inputs (an unclosed flow sequence spanning lines): report
            // where the last well-formed piece ended.
            _problems.Add(new ConfigProblem(Math.Max(1, (int)parser.LastEnd.Line), Math.Max(1, (int)parser.LastEnd.Column), "",
                "invalid YAML: cannot parse what follows (is a '[', '{' or quote left open?)"));
            return null;
        }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode s && IsNull(s))
        {
            _problems.Add(new ConfigProblem(1, 1, "", "the file is empty (it needs at least 'body:' with 'checkpoint:')"));
            return null;
        }
        if (stream.Documents.Count > 1)
            Add(stream.Documents[1].RootNode, "", $"expected one YAML document, found {stream.Documents.Count}");
        var root = stream.Documents[0].RootNode;
        if (root is not YamlMappingNode)
        {
            Add(root, "", $"the top level must be a mapping of sections ({string.Join(", ", TopKeys)}), got {Describe(root)}");
            return null;
        }
        return root;
    }

    private static string Describe(YamlNode node) => node switch
    {
        YamlMappingNode => "a mapping",
        YamlSequenceNode => "a list",
        YamlScalarNode s => $"'{s.Value}'",
        _ => "an alias",
    };

    private static bool IsNull(YamlScalarNode s) =>
        s.Style is ScalarStyle.Plain or ScalarStyle.Any && s.Tag.IsEmpty && s.Value is null or "" or "~" or "null" or "Null" or "NULL";

    /// <summary>The keys of a mapping (a null value counts as an empty mapping); unknown keys are reported.</summary>
    private Dictionary<string, Entry>? Entries(YamlNode node, string path, string[]? known, string what)
    {
        if (node is YamlScalarNode s && IsNull(s)) return [];
        if (node is not YamlMappingNode mapping)
        {
            Add(node, path, $"{what} must be a mapping{(known is null ? "" : $" ({string.Join(", ", known)})")}, got {Describe(node)}");
            return null;
        }
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        foreach (var (keyNode, value) in mapping.Children)
        {
            if (keyNode is not YamlScalarNode key || key.Value is null)
            {
                Add(keyNode, path, $"keys must be plain names, got {Describe(keyNode)}");
                continue;
            }
            var name = key.Value;
            if (known is not null && !known.Contains(name, StringComparer.Ordinal))
            {
                var suggestion = KeySuggestions.Closest(name, known);
                Add(key, Join(path, name), suggestion is not null
                    ? $"unknown key '{name}' (did you mean '{suggestion}'?)"
                    : $"unknown key '{name}' (known keys: {string.Join(", ", known)})");
                continue;
            }
            entries[name] = new Entry(key, value);
        }
        return entries;
    }

    // ---- scalars -------------------------------------------------------------------------------------------------

    /// <summary>
    /// A scalar's text after <c>${ENV}</c> substitution; null (and true) for an absent value (empty, <c>~</c>,
    /// <c>null</c>, or a plain value that substitutes to nothing); false when a problem was reported.
    /// </summary>
    private bool TryText(YamlNode node, string path, string expected, out string? text)
    {
        text = null;
        if (node is not YamlScalarNode s)
        {
            Add(node, path, $"must be {expected}, got {Describe(node)}");
            return false;
        }
        if (IsNull(s)) return true;
        var errors = new List<string>();
        var value = EnvSubstitution.Expand(s.Value ?? "", environment, errors);
        if (value is null)
        {
            foreach (var e in errors) Add(node, path, e);
            return false;
        }
        if (s.Style is ScalarStyle.Plain or ScalarStyle.Any && value.Length == 0) return true;
        text = value;
        return true;
    }

    private string? String(Dictionary<string, Entry> entries, string key, string path, out YamlNode? node)
    {
        node = null;
        if (!entries.TryGetValue(key, out var entry)) return null;
        node = entry.Value;
        return TryText(entry.Value, Join(path, key), "a string", out var text) ? text : null;
    }

    private long? Integer(Dictionary<string, Entry> entries, string key, string path, long min, long max)
    {
        if (!entries.TryGetValue(key, out var entry)) return null;
        var p = Join(path, key);
        if (!TryText(entry.Value, p, "an integer", out var text) || text is null) return null;
        if (!long.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            Add(entry.Value, p, $"must be an integer, got '{text}'");
            return null;
        }
        if (value < min)
        {
            Add(entry.Value, p, min == 1 ? $"must be positive, got {value}" : $"must be at least {min}, got {value}");
            return null;
        }
        if (value > max)
        {
            Add(entry.Value, p, $"must be at most {max}, got {value}");
            return null;
        }
        return value;
    }

    private int? Int(Dictionary<string, Entry> entries, string key, string path, int min) =>
        (int?)Integer(entries, key, path, min, int.MaxValue);

    private string? Choice(Dictionary<string, Entry> entries, string key, string path, string[] allowed)
    {
        var text = String(entries, key, path, out var node);
        if (text is null) return null;
        if (allowed.Contains(text, StringComparer.Ordinal)) return text;
        Add(node!, Join(path, key), $"must be {Alternatives(allowed)}, got '{text}'");
        return null;
    }

    private static string Alternatives(IReadOnlyList<string> values) =>
        values.Count == 1 ? values[0] : $"{string.Join(", ", values.Take(values.Count - 1))} or {values[^1]}";

    /// <summary>A path value resolved against the YAML file's folder.</summary>
    private string? PathValue(Dictionary<string, Entry> entries, string key, string path, out YamlNode? node)
    {
        var text = String(entries, key, path, out node);
        if (text is null) return null;
        try
        {
            return Path.GetFullPath(Path.Combine(_baseDir, text));
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            Add(node!, Join(path, key), $"not a valid path: '{text}' ({e.Message})");
            return null;
        }
    }

    // ---- sections ------------------------------------------------------------------------------------------------

    private Dictionary<string, Entry>? Section(Dictionary<string, Entry> top, string name, string[] known, out YamlNode? keyNode, string parent = "")
    {
        keyNode = null;
        if (!top.TryGetValue(name, out var entry)) return null;
        keyNode = entry.Key;
        return Entries(entry.Value, Join(parent, name), known, $"'{Join(parent, name)}'");
    }

    private HostSection ReadHost(Dictionary<string, Entry> top)
    {
        var defaults = new HostSection();
        var e = Section(top, "host", HostKeys, out _);
        if (e is null) return defaults;
        const string path = "host";

        var urls = String(e, "urls", path, out var urlsNode);
        if (urls is not null)
        {
            var parts = urls.Split(';', StringSplitOptions.TrimEntries);
            var bad = parts.Where(u => !(u.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || u.StartsWith("https://", StringComparison.OrdinalIgnoreCase)) || u.Length <= "https://".Length - 1).ToList();
            if (bad.Count > 0)
            {
                Add(urlsNode!, "host.urls", $"must be http:// or https:// addresses separated by ';', got '{string.Join("', '", bad)}'");
                urls = null;
            }
        }
        var cors = Section(e, "cors", CorsKeys, out _, path);
        return new HostSection
        {
            Urls = urls ?? defaults.Urls,
            MaxRequestBytes = Integer(e, "max_request_bytes", path, 1, long.MaxValue) ?? defaults.MaxRequestBytes,
            MaxInputsPerRequest = Int(e, "max_inputs_per_request", path, 1) ?? defaults.MaxInputsPerRequest,
            Oversized = Choice(e, "oversized", path, OversizedModes) ?? defaults.Oversized,
            ShutdownTimeoutSeconds = Int(e, "shutdown_timeout_seconds", path, 0) ?? defaults.ShutdownTimeoutSeconds,
            MaxInputTokens = Int(e, "max_input_tokens", path, 1) ?? defaults.MaxInputTokens,
            MaxRequestTokens = Int(e, "max_request_tokens", path, 1) ?? defaults.MaxRequestTokens,
            RequestTimeoutSeconds = Int(e, "request_timeout_seconds", path, 1) ?? defaults.RequestTimeoutSeconds,
            MaxResponseBytes = Integer(e, "max_response_bytes", path, 1024, long.MaxValue) ?? defaults.MaxResponseBytes,
            AllowedHosts = StringList(e, "allowed_hosts", path),
            CorsOrigins = (cors is null ? null : StringList(cors, "origins", "host.cors")) ?? defaults.CorsOrigins,
            Https = ReadHttps(e),
        };
    }

    private HttpsSection? ReadHttps(Dictionary<string, Entry> host)
    {
        const string path = "host.https";
        var e = Section(host, "https", HttpsKeys, out var key, "host");
        if (e is null) return null;
        var certificate = ExistingFile(e, "certificate", path);
        if (certificate is null)
        {
            if (!e.ContainsKey("certificate")) Add(key!, Join(path, "certificate"), "missing required key 'certificate' (a .pfx file, or a PEM certificate with key_file)");
            return null;
        }
        return new HttpsSection
        {
            Certificate = certificate,
            KeyFile = ExistingFile(e, "key_file", path),
            Password = String(e, "password", path, out _),
            ClientCertificates = Choice(e, "client_certificates", path, ClientCertificateModes) ?? "none",
            ClientCa = ExistingFile(e, "client_ca", path),
        };
    }

    /// <summary>A path value that must name an existing file.</summary>
    private string? ExistingFile(Dictionary<string, Entry> entries, string key, string path)
    {
        var file = PathValue(entries, key, path, out var node);
        if (file is null || File.Exists(file)) return file;
        Add(node!, Join(path, key), $"file not found: {file}");
        return null;
    }

    /// <summary>A list of non-empty strings; null when absent.</summary>
    private List<string>? StringList(Dictionary<string, Entry> entries, string key, string path)
    {
        if (!entries.TryGetValue(key, out var entry)) return null;
        var p = Join(path, key);
        if (entry.Value is YamlScalarNode s && IsNull(s)) return null;
        if (entry.Value is not YamlSequenceNode list)
        {
            Add(entry.Value, p, $"must be a list of strings, got {Describe(entry.Value)}");
            return null;
        }
        var items = new List<string>();
        for (var i = 0; i < list.Children.Count; i++)
        {
            var node = list.Children[i];
            if (!TryText(node, $"{p}[{i}]", "a string", out var text)) continue;
            if (string.IsNullOrWhiteSpace(text)) Add(node, $"{p}[{i}]", "must be a non-empty string");
            else items.Add(text.Trim());
        }
        return items;
    }

    // ---- auth ----------------------------------------------------------------------------------------------------

    private AuthSection? ReadAuth(Dictionary<string, Entry> top)
    {
        const string path = "auth";
        var e = Section(top, "auth", AuthKeys, out _);
        if (e is null) return null;
        var keys = new List<ApiKeySection>();
        if (e.TryGetValue("keys", out var keysEntry) && !(keysEntry.Value is YamlScalarNode s && IsNull(s)))
        {
            if (keysEntry.Value is not YamlSequenceNode list)
            {
                Add(keysEntry.Value, "auth.keys", $"must be a list of keys (- id: ..., sha256: ..., scopes: [...]), got {Describe(keysEntry.Value)}");
            }
            else
            {
                var ids = new HashSet<string>(StringComparer.Ordinal);
                var hashes = new HashSet<string>(StringComparer.Ordinal);
                for (var i = 0; i < list.Children.Count; i++)
                    if (ReadKey(list.Children[i], $"auth.keys[{i}]", ids, hashes) is { } key)
                        keys.Add(key);
            }
        }
        var anonymousScopes = ScopeList(e, "anonymous_scopes", path);
        var allowAnonymous = Bool(e, "allow_anonymous", path) ?? false;
        if (keys.Count == 0 && !allowAnonymous && !e.ContainsKey("keys"))
            Add(top["auth"].Value, path, "auth has no keys and does not allow anonymous requests, so nothing could be served: add keys, or set allow_anonymous: true");
        return new AuthSection
        {
            Keys = keys,
            AllowAnonymous = allowAnonymous,
            AnonymousScopes = anonymousScopes ?? [Scopes.Predict],
        };
    }

    private ApiKeySection? ReadKey(YamlNode item, string path, HashSet<string> ids, HashSet<string> hashes)
    {
        var before = _problems.Count;
        var e = Entries(item, path, KeyKeys, "a key");
        if (e is null) return null;
        var id = String(e, "id", path, out var idNode);
        if (id is null)
        {
            if (_problems.Count == before) Add(idNode ?? item, Join(path, "id"), "missing required key 'id' (the name logs and audit lines give the key)");
        }
        else if (!HeadNamePattern().IsMatch(id))
        {
            Add(idNode!, Join(path, "id"), $"'{id}' is not a valid key id (letters, digits, '_', '.' and '-')");
        }
        else if (!ids.Add(id))
        {
            Add(idNode!, Join(path, "id"), $"duplicate key id '{id}'");
        }

        var given = new[] { "sha256", "key", "key_file" }.Where(e.ContainsKey).ToList();
        string? hash = null;
        if (given.Count != 1)
        {
            Add(item, path, given.Count == 0 ? "give one of sha256 (of the key), key (e.g. ${ENV_VAR}) or key_file" : $"give only one of {string.Join(", ", given)}");
        }
        else if (given[0] == "sha256")
        {
            var text = String(e, "sha256", path, out var node)?.Trim();
            if (text is not null && Sha256Pattern().IsMatch(text)) hash = text.ToLowerInvariant();
            else if (text is not null) Add(node!, Join(path, "sha256"), $"must be 64 hexadecimal characters (sha256sum of the key), got {text.Length} characters");
        }
        else if (given[0] == "key")
        {
            var text = String(e, "key", path, out var node);
            hash = text is null ? null : KeyHash(text, node!, Join(path, "key"));
        }
        else
        {
            var file = PathValue(e, "key_file", path, out var node);
            if (file is not null)
            {
                try
                {
                    hash = KeyHash(File.ReadAllText(file).Trim(), node!, Join(path, "key_file"));
                }
                catch (Exception x) when (x is IOException or UnauthorizedAccessException)
                {
                    Add(node!, Join(path, "key_file"), $"cannot read {file}: {x.Message}");
                }
            }
        }
        if (hash is not null && !hashes.Add(hash)) Add(item, path, "the same key is listed twice");

        var scopes = ScopeList(e, "scopes", path);
        if (scopes is null && !e.ContainsKey("scopes")) Add(item, Join(path, "scopes"), $"missing required key 'scopes' ({Alternatives(Scopes.All)})");
        if (_problems.Count > before || id is null || hash is null || scopes is null) return null;
        return new ApiKeySection { Id = id, Sha256 = hash, Scopes = scopes };
    }

    private string? KeyHash(string key, YamlNode node, string path)
    {
        if (key.Length < MinKeyLength)
        {
            Add(node, path, $"the key is {key.Length} characters; use at least {MinKeyLength} (e.g. openssl rand -hex 32)");
            return null;
        }
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)));
    }

    private List<string>? ScopeList(Dictionary<string, Entry> entries, string key, string path)
    {
        var before = _problems.Count;
        var list = StringList(entries, key, path);
        if (list is null) return null;
        foreach (var scope in list.Where(s => !Scopes.All.Contains(s, StringComparer.Ordinal)))
            Add(entries[key].Value, Join(path, key), $"unknown scope '{scope}' (scopes: {string.Join(", ", Scopes.All)})");
        return _problems.Count > before ? null : list.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>A host reachable from other machines must ask for keys, or say explicitly that it serves anyone.</summary>
    private void CheckBinding(Dictionary<string, Entry> top, HostSection host, AuthSection? auth)
    {
        if (BindAddresses.Problem(host.Urls, auth) is not { } problem) return;
        var node = top.TryGetValue("host", out var h) && h.Value is YamlMappingNode m
            && m.Children.FirstOrDefault(c => c.Key is YamlScalarNode { Value: "urls" }).Value is { } urls ? urls : (YamlNode?)top.GetValueOrDefault("host").Value;
        if (node is null) return;
        Add(node, "host.urls", problem);
    }

    private BodySection? ReadBody(Dictionary<string, Entry> top, YamlNode root)
    {
        const string path = "body";
        if (!top.ContainsKey("body"))
        {
            Add(root, path, "missing required section 'body' (with at least 'checkpoint:', the model folder)");
            return null;
        }
        var e = Section(top, "body", BodyKeys, out var bodyKey);
        if (e is null) return null;

        var before = _problems.Count;
        var checkpoint = PathValue(e, "checkpoint", path, out var checkpointNode);
        int? modelMaxLength = null;
        if (checkpoint is null)
        {
            if (_problems.Count == before)
                Add(checkpointNode ?? bodyKey!, "body.checkpoint", checkpointNode is null ? "missing required key 'checkpoint' (the model folder)" : "must not be empty (the model folder)");
        }
        else
        {
            modelMaxLength = CheckModelFolder(checkpoint, checkpointNode!);
        }

        string? device = String(e, "device", path, out var deviceNode);
        if (device is not null && !DevicePattern().IsMatch(device))
        {
            Add(deviceNode!, "body.device", $"must be auto, cpu, cuda or cuda:N, got '{device}'");
            device = null;
        }
        var dtype = Choice(e, "dtype", path, DTypes);
        var maxLength = Int(e, "max_sequence_length", path, 1);
        if (maxLength is not null && modelMaxLength is not null && maxLength > modelMaxLength)
        {
            Add(e["max_sequence_length"].Value, "body.max_sequence_length",
                $"must be at most the model's max_position_embeddings ({modelMaxLength}), got {maxLength}");
        }

        var quantize = Choice(e, "quantize", path, [.. QuantizeModes.All]);
        var quantizeExclude = ModuleNames(e, "quantize_exclude", path);
        var effectiveDType = dtype ?? "float32";
        if (quantize == QuantizeModes.DynamicInt8 && effectiveDType != "float32")
            Add(e["quantize"].Value, "body.quantize", $"dynamic_int8 quantizes a float32 body; dtype is {effectiveDType}");

        if (checkpoint is null) return null;
        var defaults = new BodySection { Checkpoint = checkpoint };
        return defaults with
        {
            Device = device ?? defaults.Device,
            DType = dtype ?? defaults.DType,
            MaxSequenceLength = maxLength,
            PrepackWeights = Bool(e, "prepack_weights", path) ?? defaults.PrepackWeights,
            AttentionKernel = Bool(e, "attention_kernel", path) ?? defaults.AttentionKernel,
            Quantize = quantize ?? defaults.Quantize,
            QuantizeExclude = quantizeExclude ?? defaults.QuantizeExclude,
        };
    }

    /// <summary>A list of Linear module names (HF names; <c>*</c> wildcards).</summary>
    private List<string>? ModuleNames(Dictionary<string, Entry> e, string key, string path)
    {
        if (!e.TryGetValue(key, out var entry)) return null;
        var p = Join(path, key);
        if (entry.Value is not YamlSequenceNode list)
        {
            Add(entry.Value, p, $"must be a list of Linear names such as encoder.layer.5.output.dense ('*' matches any characters), got {Describe(entry.Value)}");
            return null;
        }
        var names = new List<string>();
        for (var i = 0; i < list.Children.Count; i++)
        {
            var lp = $"{p}[{i}]";
            if (!TryText(list.Children[i], lp, "a string", out var name)) continue;
            if (name is null || !ModuleNamePattern().IsMatch(name))
                Add(list.Children[i], lp, $"must be a Linear name such as encoder.layer.5.output.dense (letters, digits, '_', '.', '*'), got '{name}'");
            else
                names.Add(name);
        }
        return names;
    }

    [GeneratedRegex("^[A-Za-z0-9_.*]+$")]
    private static partial Regex ModuleNamePattern();

    /// <summary>Checks config.json and vocab.txt; returns the model's max_position_embeddings when readable.</summary>
    private int? CheckModelFolder(string folder, YamlNode node)
    {
        const string path = "body.checkpoint";
        if (!Directory.Exists(folder))
        {
            Add(node, path, File.Exists(folder) ? $"{folder} is a file; expected a model folder (config.json, vocab.txt, weights)" : $"model folder not found: {folder}");
            return null;
        }
        var missing = new[] { "config.json", "vocab.txt" }.Where(f => !File.Exists(Path.Combine(folder, f))).ToList();
        if (missing.Count > 0)
        {
            Add(node, path, $"model folder {folder} has no {string.Join(" and no ", missing)}");
            if (missing.Contains("config.json")) return null;
        }
        var config = ReadJson(Path.Combine(folder, "config.json"), node, path);
        if (config is { ValueKind: JsonValueKind.Object } c
            && c.TryGetProperty("max_position_embeddings", out var m) && m.TryGetInt32(out var max))
            return max;
        return null;
    }

    private JsonElement? ReadJson(string file, YamlNode node, string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            Add(node, path, $"{file} is not valid JSON: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Add(node, path, $"cannot read {file}: {e.Message}");
        }
        return null;
    }

    private BatchingSection ReadBatching(Dictionary<string, Entry> top)
    {
        var defaults = new BatchingSection();
        var e = Section(top, "batching", BatchingKeys, out _);
        if (e is null) return defaults;
        const string path = "batching";
        return new BatchingSection
        {
            MaxBatchTokens = Int(e, "max_batch_tokens", path, 1) ?? defaults.MaxBatchTokens,
            MaxBatchRequests = Int(e, "max_batch_requests", path, 1) ?? defaults.MaxBatchRequests,
            MaxWaitMs = Int(e, "max_wait_ms", path, 0) ?? defaults.MaxWaitMs,
            MaxQueuedInputs = Int(e, "max_queued_inputs", path, 1) ?? defaults.MaxQueuedInputs,
            MaxQueuedTokens = Integer(e, "max_queued_tokens", path, 1, long.MaxValue) ?? defaults.MaxQueuedTokens,
        };
    }

    private JobsSection ReadJobs(Dictionary<string, Entry> top)
    {
        var defaults = new JobsSection { Directory = Path.Combine(_baseDir, "jobs") };
        var e = Section(top, "jobs", JobsKeys, out _);
        if (e is null) return defaults;
        const string path = "jobs";
        var directory = PathValue(e, "directory", path, out var directoryNode);
        if (directory is not null && File.Exists(directory))
        {
            Add(directoryNode!, "jobs.directory", $"{directory} is a file; expected a folder for the jobs' records and outputs");
            directory = null;
        }
        return new JobsSection
        {
            Directory = directory ?? defaults.Directory,
            Enabled = Bool(e, "enabled", path) ?? defaults.Enabled,
            MaxConcurrent = Int(e, "max_concurrent", path, 1) ?? defaults.MaxConcurrent,
            ResumeInterrupted = Bool(e, "resume_interrupted", path) ?? defaults.ResumeInterrupted,
            BodySwap = Choice(e, "body_swap", path, BodySwapModes) ?? defaults.BodySwap,
            Promote = Choice(e, "promote", path, BodySwapModes) ?? defaults.Promote,
            DataRoots = ReadDataRoots(e),
            MaxUploadBytes = Integer(e, "max_upload_bytes", path, 1, long.MaxValue) ?? defaults.MaxUploadBytes,
            MaxDataBytes = Integer(e, "max_data_bytes", path, 1, long.MaxValue) ?? defaults.MaxDataBytes,
        };
    }

    /// <summary><c>jobs.data_roots</c>: existing folders, resolved against the YAML file's folder and through symlinks.</summary>
    private List<string> ReadDataRoots(Dictionary<string, Entry> jobs)
    {
        var roots = new List<string>();
        if (StringList(jobs, "data_roots", "jobs") is not { } list) return roots;
        var node = jobs["data_roots"].Value;
        for (var i = 0; i < list.Count; i++)
        {
            string full;
            try
            {
                full = Path.GetFullPath(Path.Combine(_baseDir, list[i]));
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
            {
                Add(node, $"jobs.data_roots[{i}]", $"not a valid path: '{list[i]}'");
                continue;
            }
            if (!Directory.Exists(full))
            {
                Add(node, $"jobs.data_roots[{i}]", $"folder not found: {full}");
                continue;
            }
            roots.Add(IO.RealPath.Of(full));
        }
        return roots;
    }

    private bool? Bool(Dictionary<string, Entry> entries, string key, string path)
    {
        var text = String(entries, key, path, out var node);
        if (text is null) return null;
        if (bool.TryParse(text.Trim(), out var value)) return value;
        Add(node!, Join(path, key), $"must be true or false, got '{text}'");
        return null;
    }

    /// <summary><c>telemetry:</c> where traces and metrics go besides <c>/metrics</c> (an OTLP collector).</summary>
    private TelemetrySection ReadTelemetry(Dictionary<string, Entry> top)
    {
        var defaults = new TelemetrySection();
        var e = Section(top, "telemetry", TelemetryKeys, out _);
        if (e is null) return defaults;
        const string path = "telemetry";
        Uri? endpoint = null;
        if (String(e, "otlp_endpoint", path, out var node) is { } text)
        {
            if (Uri.TryCreate(text.Trim(), UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0)
                endpoint = uri;
            else
                Add(node!, "telemetry.otlp_endpoint", $"must be an http:// or https:// address of an OTLP collector (e.g. http://127.0.0.1:4317), got '{text}'");
        }
        var serviceName = String(e, "service_name", path, out var nameNode);
        if (serviceName is not null && serviceName.Trim().Length == 0)
        {
            Add(nameNode!, "telemetry.service_name", "must not be empty");
            serviceName = null;
        }
        return new TelemetrySection
        {
            OtlpEndpoint = endpoint,
            OtlpProtocol = Choice(e, "otlp_protocol", path, OtlpProtocols) ?? defaults.OtlpProtocol,
            ServiceName = serviceName?.Trim() ?? defaults.ServiceName,
        };
    }

    /// <summary><c>protocols:</c> which heads answer the routes that name no head (TEI's <c>/embed</c> and <c>/rerank</c>).</summary>
    private ProtocolsSection ReadProtocols(Dictionary<string, Entry> top, IReadOnlyList<HeadSection> heads)
    {
        var e = Section(top, "protocols", ProtocolsKeys, out _);
        if (e is null) return new ProtocolsSection();
        string? Head(string key)
        {
            var name = String(e, key, "protocols", out var node);
            if (name is null) return null;
            var head = heads.FirstOrDefault(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase));
            if (head is not null) return head.Name;
            var suggestion = KeySuggestions.Closest(name, heads.Select(h => h.Name).ToList());
            Add(node!, $"protocols.{key}", $"no head named '{name}'{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")}");
            return null;
        }
        return new ProtocolsSection { EmbedHead = Head("embed_head"), RerankHead = Head("rerank_head") };
    }

    // ---- heads ---------------------------------------------------------------------------------------------------

    private List<HeadSection> ReadHeads(Dictionary<string, Entry> top)
    {
        var heads = new List<HeadSection>();
        if (!top.TryGetValue("heads", out var entry)) return heads;
        if (entry.Value is YamlScalarNode s && IsNull(s)) return heads;
        if (entry.Value is not YamlSequenceNode list)
        {
            Add(entry.Value, "heads", $"must be a list of heads (- name: ..., kind: ..., plugin: ...), got {Describe(entry.Value)}");
            return heads;
        }
        var names = new Dictionary<string, (string Name, int Line)>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < list.Children.Count; i++)
            if (ReadHead(list.Children[i], $"heads[{i}]", names) is { } head)
                heads.Add(head);
        return heads;
    }

    private HeadSection? ReadHead(YamlNode item, string path, Dictionary<string, (string Name, int Line)> names)
    {
        var before = _problems.Count;
        var e = Entries(item, path, HeadKeys, "a head");
        if (e is null) return null;

        var mark = _problems.Count;
        var name = String(e, "name", path, out var nameNode);
        if (name is null)
        {
            if (_problems.Count == mark)
                Add(nameNode ?? item, Join(path, "name"), nameNode is null ? "missing required key 'name'" : "must not be empty");
        }
        else if (!HeadNamePattern().IsMatch(name))
        {
            Add(nameNode!, Join(path, "name"), $"'{name}' is not a valid head name (letters, digits, '_', '.' and '-', starting with a letter or digit: it appears in URLs)");
        }
        else if (names.TryGetValue(name, out var first))
        {
            Add(nameNode!, Join(path, "name"), first.Name == name
                ? $"duplicate head name '{name}' (first used at line {first.Line})"
                : $"duplicate head name '{name}' (first used at line {first.Line} as '{first.Name}'; names are compared ignoring case because they appear in URLs)");
        }
        else
        {
            names[name] = (name, (int)nameNode!.Start.Line);
        }

        mark = _problems.Count;
        var kind = String(e, "kind", path, out var kindNode);
        if ((kind is null || kind.Trim().Length == 0) && _problems.Count == mark)
            Add(kindNode ?? item, Join(path, "kind"), kindNode is null ? "missing required key 'kind' (e.g. text-classification)" : "must not be empty");

        mark = _problems.Count;
        var plugin = PathValue(e, "plugin", path, out var pluginNode);
        string? assembly = null;
        if (plugin is null)
        {
            if (_problems.Count == mark)
                Add(pluginNode ?? item, Join(path, "plugin"), pluginNode is null ? "missing required key 'plugin' (a plugin folder or .dll)" : "must not be empty (a plugin folder or .dll)");
        }
        else
        {
            assembly = PluginPaths.ResolveAssembly(plugin, out var lookedFor);
            if (assembly is null)
                Add(pluginNode!, Join(path, "plugin"), $"no plugin assembly found for {plugin} (looked for {lookedFor})", headPluginOnly: true);
        }

        var sha = String(e, "sha256", path, out var shaNode)?.Trim();
        if (sha is not null)
        {
            if (!Sha256Pattern().IsMatch(sha))
            {
                Add(shaNode!, Join(path, "sha256"), $"must be 64 hexadecimal characters (the SHA-256 of the plugin's main assembly), got '{sha}' ({sha.Length} characters)");
            }
            else
            {
                sha = sha.ToLowerInvariant();
                // A pin that does not match is not tolerated even when serving: the file is not what the operator vetted.
                if (assembly is not null && PluginPaths.Sha256Of(assembly) is var actual && actual != sha)
                    Add(shaNode!, Join(path, "sha256"), $"sha256 mismatch for {assembly}: expected {sha}, actual {actual}");
            }
        }

        var labels = ReadLabels(e, path);

        var weights = PathValue(e, "weights", path, out var weightsNode);
        if (weights is not null)
        {
            if (Directory.Exists(weights))
            {
                if (labels is not null) CheckWeightsLabels(weights, labels, e["labels"].Value, weightsNode!, path);
            }
            else if (!File.Exists(weights))
            {
                Add(weightsNode!, Join(path, "weights"), $"head weights not found: {weights}");
            }
        }

        var required = Bool(e, "required", path) ?? true;

        var options = e.TryGetValue("options", out var optionsEntry)
            ? YamlJson.ToOptions(optionsEntry.Value, Join(path, "options"), environment, (node, p, message) => Add(node, p, message))
            : (JsonElement?)null;

        // A head whose only problems are with its plugin assembly is kept: serving may start without it (it then fails to load).
        if (_problems.Skip(before).Any(p => !p.HeadPluginOnly)) return null;
        var head = new HeadSection
        {
            Name = name!,
            Kind = kind!,
            Plugin = plugin!,
            Sha256 = sha,
            Labels = labels,
            Weights = weights,
            Required = required,
            Line = (int)item.Start.Line,
        };
        if (options is { } o) head = head with { Options = o };

        // The plugin's own checks of the head (its options and labels), only for an entry that is sound so far.
        if (headValidator is not null && _body is not null && _problems.Count == before)
            foreach (var (field, message) in headValidator.Validate(_body, head))
                Add(NodeOf(e, item, field), Join(path, field), message);
        return head;
    }

    /// <summary>
    /// The YAML node a head problem's field names, for its line: <c>options.pooling</c> → the value of <c>pooling:</c>
    /// (<c>options.hidden_layers[1]</c> → that list), <c>labels</c> → the labels; the head's entry when there is none.
    /// </summary>
    private static YamlNode NodeOf(Dictionary<string, Entry> head, YamlNode item, string field)
    {
        var parts = field.Split('.', 2);
        var top = parts[0].Split('[')[0];
        if (!head.TryGetValue(top, out var entry)) return item;
        if (parts.Length == 2 && entry.Value is YamlMappingNode mapping)
        {
            var key = parts[1].Split('.', '[')[0];
            foreach (var (k, v) in mapping.Children)
                if (k is YamlScalarNode { Value: { } name } && name == key) return v;
        }
        return entry.Value;
    }

    private List<string>? ReadLabels(Dictionary<string, Entry> e, string path)
    {
        var ok = true;
        if (!e.TryGetValue("labels", out var entry)) return null;
        var p = Join(path, "labels");
        if (entry.Value is YamlScalarNode s && IsNull(s)) return null;
        if (entry.Value is not YamlSequenceNode list)
        {
            Add(entry.Value, p, $"must be a list of strings, got {Describe(entry.Value)}");
            return null;
        }
        if (list.Children.Count == 0)
        {
            Add(entry.Value, p, "must list at least one label (or leave 'labels' out)");
            return null;
        }
        var labels = new List<string>();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < list.Children.Count; i++)
        {
            var node = list.Children[i];
            var lp = $"{p}[{i}]";
            if (!TryText(node, lp, "a string", out var label))
            {
                ok = false;
                continue;
            }
            if (string.IsNullOrWhiteSpace(label))
            {
                ok = false;
                Add(node, lp, "must be a non-empty string");
                continue;
            }
            if (seen.TryGetValue(label, out var firstIndex))
            {
                ok = false;
                Add(node, lp, $"duplicate label '{label}' (also {p}[{firstIndex}])");
                continue;
            }
            seen[label] = i;
            labels.Add(label);
        }
        return ok ? labels : null;
    }

    /// <summary>
    /// YAML labels against those a weights folder declares: <c>head.json</c> <c>"labels"</c> and a Hugging Face
    /// <c>config.json</c> <c>id2label</c>. transformers' placeholder names (<c>LABEL_0</c>, <c>LABEL_1</c>, ...) only fix
    /// the count.
    /// </summary>
    private void CheckWeightsLabels(string folder, List<string> labels, YamlNode labelsNode, YamlNode weightsNode, string path)
    {
        var weightsPath = Join(path, "weights");
        var manifest = Path.Combine(folder, "head.json");
        if (File.Exists(manifest) && ReadJson(manifest, weightsNode, weightsPath) is { ValueKind: JsonValueKind.Object } m
            && m.TryGetProperty("labels", out var list))
        {
            if (list.ValueKind != JsonValueKind.Array || list.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
            {
                Add(weightsNode, weightsPath, $"{manifest}: \"labels\" must be an array of strings");
            }
            else
            {
                var theirs = list.EnumerateArray().Select(x => x.GetString()!).ToList();
                if (!theirs.SequenceEqual(labels))
                {
                    Add(labelsNode, Join(path, "labels"), $"labels {Show(labels)} differ from the weights' labels {Show(theirs)} (in {manifest})");
                }
            }
        }

        var config = Path.Combine(folder, "config.json");
        if (File.Exists(config) && ReadJson(config, weightsNode, weightsPath) is { ValueKind: JsonValueKind.Object } c
            && c.TryGetProperty("id2label", out var id2label) && id2label.ValueKind == JsonValueKind.Object)
        {
            var pairs = new List<(int Id, string Label)>();
            foreach (var prop in id2label.EnumerateObject())
            {
                if (!int.TryParse(prop.Name, NumberStyles.None, CultureInfo.InvariantCulture, out var id) || prop.Value.ValueKind != JsonValueKind.String)
                {
                    Add(weightsNode, weightsPath, $"{config}: id2label must map label ids (\"0\", \"1\", ...) to names");
                    return;
                }
                pairs.Add((id, prop.Value.GetString()!));
            }
            var theirs = pairs.OrderBy(x => x.Id).Select(x => x.Label).ToList();
            var placeholders = pairs.All(x => GenericLabel().Match(x.Label) is { Success: true } g && g.Groups[1].Value == x.Id.ToString(CultureInfo.InvariantCulture));
            if (placeholders ? theirs.Count != labels.Count : !theirs.SequenceEqual(labels))
            {
                Add(labelsNode, Join(path, "labels"), placeholders
                    ? $"labels {Show(labels)} are {labels.Count} but the weights have {theirs.Count} {Show(theirs)} (in {config} id2label)"
                    : $"labels {Show(labels)} differ from the weights' labels {Show(theirs)} (in {config} id2label)");
            }
        }
    }

    private static string Show(IEnumerable<string> labels) => $"[{string.Join(", ", labels)}]";

    /// <summary>Remembers where the last parsed event ended, for errors that carry no position.</summary>
    private sealed class TrackingParser(IParser inner) : IParser
    {
        public Mark LastEnd { get; private set; } = Mark.Empty;

        public YamlDotNet.Core.Events.ParsingEvent? Current => inner.Current;

        public bool MoveNext()
        {
            var moved = inner.MoveNext();
            if (inner.Current is { } current) LastEnd = current.End;
            return moved;
        }
    }
}
