using System.Text.Json;

namespace BertHost.Core.Text;

/// <summary>
/// How a BERT tokenizer normalizes text and which special tokens it uses (the Hugging Face <c>tokenizer_config.json</c>
/// / <c>special_tokens_map.json</c> fields that matter for BERT).
/// </summary>
public sealed record TokenizerSettings(
    bool DoLowerCase,
    bool StripAccents,
    bool TokenizeChineseChars,
    int ModelMaxLength,
    string UnkToken,
    string ClsToken,
    string SepToken,
    string PadToken,
    string MaskToken,
    int MaxInputCharsPerWord = 100)
{
    /// <summary>bert-base-uncased defaults.</summary>
    public static TokenizerSettings Default { get; } =
        new(true, true, true, 512, "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]");

    /// <summary>
    /// Reads <c>tokenizer_config.json</c> (do_lower_case, default true; strip_accents, null = follows do_lower_case;
    /// tokenize_chinese_chars; model_max_length; *_token) and then <c>special_tokens_map.json</c> (its tokens win).
    /// Absent files give BERT defaults. model_max_length absent or absurd (HF writes 1e30 for "unset") falls back to
    /// config.json's max_position_embeddings, else 512. Malformed JSON throws <see cref="InvalidDataException"/>
    /// naming the file.
    /// </summary>
    public static TokenizerSettings FromFolder(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Tokenizer folder '{Path.GetFullPath(folder)}' does not exist.");

        var s = Default;
        bool? stripAccents = null;
        int? maxLen = null;

        var cfgPath = Path.Combine(folder, "tokenizer_config.json");
        if (ReadJson(cfgPath) is { } cfg)
        {
            var root = cfg.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"'{cfgPath}' must hold a JSON object.");
            if (TryBool(root, "do_lower_case", cfgPath) is { } lower) s = s with { DoLowerCase = lower };
            stripAccents = TryBool(root, "strip_accents", cfgPath);
            if (TryBool(root, "tokenize_chinese_chars", cfgPath) is { } cjk) s = s with { TokenizeChineseChars = cjk };
            maxLen = TryMaxLength(root, "model_max_length", cfgPath);
            if (root.TryGetProperty("max_input_chars_per_word", out var mc) && mc.ValueKind == JsonValueKind.Number)
                s = s with { MaxInputCharsPerWord = mc.GetInt32() };
            s = ApplyTokens(s, root, cfgPath);
            cfg.Dispose();
        }

        var mapPath = Path.Combine(folder, "special_tokens_map.json");
        if (ReadJson(mapPath) is { } map)
        {
            if (map.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"'{mapPath}' must hold a JSON object.");
            s = ApplyTokens(s, map.RootElement, mapPath);
            map.Dispose();
        }

        if (maxLen is null)
        {
            var modelCfg = Path.Combine(folder, "config.json");
            if (ReadJson(modelCfg) is { } mc2)
            {
                if (mc2.RootElement.ValueKind == JsonValueKind.Object)
                    maxLen = TryMaxLength(mc2.RootElement, "max_position_embeddings", modelCfg);
                mc2.Dispose();
            }
        }

        return s with { StripAccents = stripAccents ?? s.DoLowerCase, ModelMaxLength = maxLen ?? 512 };
    }

    private static JsonDocument? ReadJson(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonDocument.Parse(File.ReadAllText(path),
                new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e);
        }
    }

    private static bool? TryBool(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            _ => throw new InvalidDataException($"'{path}': '{name}' must be true, false or null, not {v.ValueKind}."),
        };
    }

    private static int? TryMaxLength(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number)
            throw new InvalidDataException($"'{path}': '{name}' must be a number.");
        var d = v.GetDouble();
        if (d <= 0) throw new InvalidDataException($"'{path}': '{name}' must be positive.");
        return d >= 1_000_000 ? null : (int)d;   // HF's VERY_LARGE_INTEGER means "not set"
    }

    private static TokenizerSettings ApplyTokens(TokenizerSettings s, JsonElement root, string path) => s with
    {
        UnkToken = Token(root, "unk_token", path) ?? s.UnkToken,
        ClsToken = Token(root, "cls_token", path) ?? s.ClsToken,
        SepToken = Token(root, "sep_token", path) ?? s.SepToken,
        PadToken = Token(root, "pad_token", path) ?? s.PadToken,
        MaskToken = Token(root, "mask_token", path) ?? s.MaskToken,
    };

    // a token is either "[CLS]" or an AddedToken object {"content": "[CLS]", ...}
    private static string? Token(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.String) return NonEmpty(v.GetString());
        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
            return NonEmpty(c.GetString());
        throw new InvalidDataException($"'{path}': '{name}' must be a string or an object with a 'content' string.");

        string NonEmpty(string? t) => string.IsNullOrEmpty(t)
            ? throw new InvalidDataException($"'{path}': '{name}' is empty.") : t;
    }
}
