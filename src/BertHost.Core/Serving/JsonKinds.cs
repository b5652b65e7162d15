using System.Text.Json;

namespace BertHost.Core.Serving;

/// <summary>How request errors name the JSON type that was sent ("must be an array, got a string").</summary>
public static class JsonKinds
{
    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };
}
