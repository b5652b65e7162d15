using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace BertHost.Tests.Support;

/// <summary>JSON requests against a test host: the status and the parsed body.</summary>
public static class HttpJson
{
    public static async Task<(int Status, JsonNode Body)> PostAsync(HttpClient client, string path, object body)
    {
        using var response = await client.PostAsJsonAsync(path, body);
        return await ReadAsync(response);
    }

    public static async Task<(int Status, JsonNode Body)> GetAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        return await ReadAsync(response);
    }

    public static async Task<(int Status, JsonNode Body)> DeleteAsync(HttpClient client, string path)
    {
        using var response = await client.DeleteAsync(path);
        return await ReadAsync(response);
    }

    private static async Task<(int Status, JsonNode Body)> ReadAsync(HttpResponseMessage response) =>
        ((int)response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
}
