using System.Text.Encodings.Web;
using System.Text.Json;

namespace BertHost;

/// <summary>
/// How the host writes JSON for people and programs (HTTP bodies, CLI lines): text as it is — accents, CJK and quotes
/// are not \u-escaped. The output is JSON, never embedded in HTML, so the relaxed encoder is safe.
/// </summary>
internal static class JsonOutput
{
    public static readonly JsonWriterOptions Writer = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static readonly JsonSerializerOptions Serializer = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}
