using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Core.IO;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace BertHost.Api;

/// <summary>What a request addressed, filled in by the handlers and read by the metrics/error middleware.</summary>
internal sealed class RequestInfo
{
    public static readonly object Key = new();

    /// <summary>The head addressed when it exists (never an arbitrary client string: metric labels stay bounded).</summary>
    public string? Head { get; set; }

    public int Inputs { get; set; }

    /// <summary>The error code answered, when the request failed (set by whoever wrote the error).</summary>
    public string? ErrorCode { get; set; }

    public static RequestInfo Of(HttpContext context) =>
        context.Items.TryGetValue(Key, out var value) && value is RequestInfo info ? info : new RequestInfo();
}

/// <summary>The handlers of every route; all answer JSON (errors are thrown and written by the middleware).</summary>
internal sealed class ApiEndpoints(IInferenceEngine engine, ServingMetrics metrics, ApiOptions options, IHostApplicationLifetime lifetime)
{
    private static readonly JsonElement EmptyParameters = JsonDocument.Parse("{}").RootElement.Clone();

    public Task GetHeadsAsync(HttpContext context) =>
        ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("heads");
            foreach (var head in engine.Heads) WriteHead(w, head, details: false);
            w.WriteEndArray();
            w.WriteEndObject();
        });

    public Task GetHeadAsync(HttpContext context)
    {
        var head = FindHead(context, withDetails: true);
        return ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w => WriteHead(w, head, details: true));
    }

    public async Task PredictOneAsync(HttpContext context)
    {
        var head = FindHead(context);
        var root = await JsonRequestReader.ReadAsync(context, options.MaxRequestBytes);
        var request = ParseRequest(context, root, withHeads: false);
        EnsureServable(head, "");

        var outputs = await engine.PredictAsync(head.Name, request.Inputs, request.Parameters, context.RequestAborted);
        CheckOutputCount(outputs.Count, request.Inputs.Count, head.Name);
        await WriteOutputsAsync(context, outputs);
    }

    private static Task WriteOutputsAsync(HttpContext context, IEnumerable<System.Text.Json.Nodes.JsonNode> outputs) =>
        ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartObject();
            w.WriteStartArray("outputs");
            foreach (var output in outputs) WriteNode(w, output);
            w.WriteEndArray();
            w.WriteEndObject();
        });

    public async Task PredictManyAsync(HttpContext context)
    {
        var root = await JsonRequestReader.ReadAsync(context, options.MaxRequestBytes);
        var request = ParseRequest(context, root, withHeads: true);
        for (var i = 0; i < request.Heads.Count; i++)
            EnsureServable(engine.FindHead(request.Heads[i])!, $"heads[{i}]");

        var outputs = await engine.PredictManyAsync(request.Heads, request.Inputs, request.Parameters, context.RequestAborted);
        CheckOutputCount(outputs.Count, request.Inputs.Count, string.Join(",", request.Heads));
        await WriteOutputsAsync(context, outputs);
    }

    public Task HealthAsync(HttpContext context) =>
        ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartObject();
            w.WriteString("status", "ok");
            w.WriteEndObject();
        });

    /// <summary>
    /// 200 <c>ready</c> when the readiness check passes; 503 <c>not_ready</c> (a required head failed to load) or
    /// <c>stopping</c>. Every head is listed with its state, whether it is required, and why it failed.
    /// </summary>
    public async Task ReadyAsync(HttpContext context)
    {
        var health = context.RequestServices.GetRequiredService<HealthCheckService>();
        var report = await HostHealth.CheckAsync(health, HostHealth.Ready, context.RequestAborted);
        var ready = report.Status == HealthStatus.Healthy;
        var status = ready ? "ready" : lifetime.ApplicationStopping.IsCancellationRequested ? "stopping" : "not_ready";
        await ApiResponses.WriteJsonAsync(context, ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, w =>
        {
            w.WriteStartObject();
            w.WriteString("status", status);
            w.WriteStartArray("heads");
            foreach (var head in engine.Heads)
            {
                w.WriteStartObject();
                w.WriteString("name", head.Name);
                w.WriteString("state", head.State);
                w.WriteBoolean("required", head.Required);
                if (head.Error is not null) w.WriteString("error", Redact(head.Error));
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    public async Task MetricsAsync(HttpContext context)
    {
        var text = metrics.ToPrometheusText();
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = ServingMetrics.ContentType;
        await context.Response.WriteAsync(text, context.RequestAborted);
    }

    public Task BodyAsync(HttpContext context)
    {
        var body = engine.DescribeBody();
        if (body["model_folder"] is JsonValue folder && folder.TryGetValue<string>(out var path)) body["model_folder"] = ClientPaths.Show(path, options.ConfigFolder);
        return ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w => WriteNode(w, body));
    }

    private HeadStatus FindHead(HttpContext context, bool withDetails = false)
    {
        var name = context.Request.RouteValues["name"] as string ?? "";
        var head = engine.FindHead(name, withDetails)
            ?? throw new ApiException(StatusCodes.Status404NotFound, ApiErrorCodes.UnknownHead, $"no head named '{name}'");
        RequestInfo.Of(context).Head = head.Name;
        return head;
    }

    private static void EnsureServable(HeadStatus head, string field) => Protocols.ProtocolHeads.EnsureServable(head, field.Length > 0 ? field : null);

    private sealed record PredictRequest(IReadOnlyList<string> Heads, IReadOnlyList<JsonElement> Inputs, JsonElement Parameters);

    private PredictRequest ParseRequest(HttpContext context, JsonElement root, bool withHeads)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw ApiException.BadRequest($"request body must be a JSON object, got {JsonKinds.Describe(root.ValueKind)}");

        JsonElement? inputs = null, parameters = null, heads = null;
        foreach (var property in root.EnumerateObject())
        {
            switch (property.Name)
            {
                case "inputs": inputs = property.Value; break;
                case "parameters": parameters = property.Value; break;
                case "heads" when withHeads: heads = property.Value; break;
                default:
                    throw ApiException.BadRequest(
                        $"unknown field '{property.Name}'; expected {(withHeads ? "heads, inputs and parameters" : "inputs and parameters")}",
                        property.Name);
            }
        }

        var headNames = withHeads ? ParseHeads(context, heads) : [];

        if (inputs is not { } inputsElement)
            throw ApiException.BadRequest("inputs is required", "inputs");
        if (inputsElement.ValueKind != JsonValueKind.Array)
            throw ApiException.BadRequest($"inputs must be an array, got {JsonKinds.Describe(inputsElement.ValueKind)}", "inputs");
        var count = inputsElement.GetArrayLength();
        RequestInfo.Of(context).Inputs = count;
        if (count == 0)
            throw ApiException.BadRequest("inputs must not be empty", "inputs");
        if (count > options.MaxInputsPerRequest)
            throw new ApiException(StatusCodes.Status413PayloadTooLarge, ApiErrorCodes.PayloadTooLarge,
                $"too many inputs: {count} (at most {options.MaxInputsPerRequest} per request)", "inputs");
        var list = new JsonElement[count];
        var k = 0;
        foreach (var item in inputsElement.EnumerateArray()) list[k++] = item;

        var parametersElement = EmptyParameters;
        if (parameters is { } p && p.ValueKind != JsonValueKind.Null)
        {
            if (p.ValueKind != JsonValueKind.Object)
                throw ApiException.BadRequest($"parameters must be an object, got {JsonKinds.Describe(p.ValueKind)}", "parameters");
            parametersElement = p;
        }
        return new PredictRequest(headNames, list, parametersElement);
    }

    private List<string> ParseHeads(HttpContext context, JsonElement? heads)
    {
        if (heads is not { } element)
            throw ApiException.BadRequest("heads is required", "heads");
        if (element.ValueKind != JsonValueKind.Array)
            throw ApiException.BadRequest($"heads must be an array of head names, got {JsonKinds.Describe(element.ValueKind)}", "heads");
        if (element.GetArrayLength() == 0)
            throw ApiException.BadRequest("heads must not be empty", "heads");
        var names = new List<string>();
        var i = 0;
        foreach (var item in element.EnumerateArray())
        {
            var field = $"heads[{i}]";
            if (item.ValueKind != JsonValueKind.String)
                throw ApiException.BadRequest($"{field} must be a string, got {JsonKinds.Describe(item.ValueKind)}", field);
            var name = item.GetString()!;
            if (names.Contains(name, StringComparer.Ordinal))
                throw ApiException.BadRequest($"head '{name}' is listed twice", field);
            if (engine.FindHead(name) is null)
                throw new ApiException(StatusCodes.Status404NotFound, ApiErrorCodes.UnknownHead, $"no head named '{name}'", field);
            names.Add(name);
            i++;
        }
        return names;
    }

    private static void CheckOutputCount(int outputs, int inputs, string head)
    {
        if (outputs != inputs)
            throw new InvalidOperationException($"engine returned {outputs} output(s) for {inputs} input(s) (head {head})");
    }

    /// <summary>A head as clients see it: paths relative to the deployment's folder (or just names), errors without server paths.</summary>
    private void WriteHead(Utf8JsonWriter w, HeadStatus head, bool details)
    {
        w.WriteStartObject();
        w.WriteString("name", head.Name);
        w.WriteString("kind", head.Kind);
        w.WriteString("state", head.State);
        if (head.Error is not null) w.WriteString("error", Redact(head.Error));
        w.WriteStartArray("labels");
        foreach (var label in head.Labels) w.WriteStringValue(label);
        w.WriteEndArray();
        if (head.Plugin is not null) w.WriteString("plugin", ClientPaths.Show(head.Plugin, options.ConfigFolder));
        if (head.PluginSha256 is not null) w.WriteString("plugin_sha256", head.PluginSha256);
        if (details)
        {
            w.WritePropertyName("details");
            if (head.Details is null)
            {
                w.WriteStartObject();
                w.WriteEndObject();
            }
            else
            {
                var shown = (JsonObject)head.Details.DeepClone();
                if (shown["weights"] is JsonValue weights && weights.TryGetValue<string>(out var folder)) shown["weights"] = ClientPaths.Show(folder, options.ConfigFolder);
                foreach (var key in new[] { "last_serving_error", "describe_error" })
                    if (shown[key] is JsonValue v && v.TryGetValue<string>(out var text)) shown[key] = Redact(text);
                shown.WriteTo(w);
            }
        }
        w.WriteEndObject();
    }

    private string Redact(string text) => ClientPaths.Redact(text, options.ConfigFolder);

    private static void WriteNode(Utf8JsonWriter w, JsonNode? node)
    {
        if (node is null) w.WriteNullValue();
        else node.WriteTo(w);
    }
}
