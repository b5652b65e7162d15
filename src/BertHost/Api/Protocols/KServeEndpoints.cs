using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Core.Serving;
using Microsoft.AspNetCore.Http;

namespace BertHost.Api.Protocols;

/// <summary>
/// The Open Inference Protocol (KServe v2, Triton's HTTP API) over every head: a head is a model. Inputs are BYTES
/// tensors named after the fields of the head's JSON input (<c>text</c>, <c>text_pair</c>, <c>question</c>,
/// <c>context</c>, <c>choices</c>...), the first dimension the batch; outputs are typed per head kind
/// (<see cref="KServeTensors"/>). Errors are <c>{"error": "..."}</c>.
/// </summary>
internal sealed class KServeEndpoints(IInferenceEngine engine, ApiOptions options, Func<CancellationToken, Task<bool>> ready)
{
    private static readonly string[] RequestFields = ["id", "parameters", "inputs", "outputs"];
    private static readonly string[] InputFields = ["name", "shape", "datatype", "parameters", "data"];

    private static readonly string Version =
        typeof(KServeEndpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0";

    public Task LiveAsync(HttpContext context) =>
        ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w => { w.WriteStartObject(); w.WriteBoolean("live", true); w.WriteEndObject(); });

    public async Task ReadyAsync(HttpContext context)
    {
        var isReady = await ready(context.RequestAborted);
        await ApiResponses.WriteJsonAsync(context, isReady ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable,
            w => { w.WriteStartObject(); w.WriteBoolean("ready", isReady); w.WriteEndObject(); });
    }

    public Task ServerMetadataAsync(HttpContext context) =>
        ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartObject();
            w.WriteString("name", "berthost");
            w.WriteString("version", Version);
            w.WriteStartArray("extensions");
            w.WriteEndArray();
            w.WriteEndObject();
        });

    public Task ModelMetadataAsync(HttpContext context)
    {
        var head = Model(context);
        return ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartObject();
            w.WriteString("name", head.Name);
            w.WriteString("platform", $"berthost_{head.Kind}");
            WriteSpecs(w, "inputs", KServeTensors.Inputs(head.Kind));
            WriteSpecs(w, "outputs", KServeTensors.Outputs(head));
            w.WriteEndObject();
        });
    }

    public Task ModelReadyAsync(HttpContext context)
    {
        var head = Model(context);
        return ApiResponses.WriteJsonAsync(context, head.IsReady ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable, w =>
        {
            w.WriteStartObject();
            w.WriteString("name", head.Name);
            w.WriteBoolean("ready", head.IsReady);
            w.WriteEndObject();
        });
    }

    public async Task InferAsync(HttpContext context)
    {
        var head = Model(context);
        if (context.Request.Headers.ContainsKey("Inference-Header-Content-Length"))
            throw ApiException.BadRequest("the binary tensor data extension is not supported; send the tensors as JSON");
        var root = await JsonRequestReader.ReadAsync(context, options.MaxRequestBytes);
        var fields = ProtocolHeads.Fields(root, RequestFields);
        var id = fields.TryGetValue("id", out var idValue) ? ProtocolHeads.String(idValue, "id") : null;
        var parameters = fields.TryGetValue("parameters", out var p) && p.ValueKind != JsonValueKind.Null ? p : ProtocolHeads.Parameters();
        if (parameters.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest("parameters must be an object", "parameters");
        if (parameters.TryGetProperty("binary_data_output", out var binary) && binary.ValueKind == JsonValueKind.True)
            throw ApiException.BadRequest("binary_data_output is not supported; outputs are JSON", "parameters.binary_data_output");
        parameters = Without(parameters, "binary_data_output");

        if (!fields.TryGetValue("inputs", out var inputsValue)) throw ApiException.BadRequest("inputs is required", "inputs");
        var tensors = ReadInputs(inputsValue, head.Kind);
        var rows = KServeTensors.Rows(tensors);
        RequestInfo.Of(context).Inputs = rows.Count;
        if (rows.Count > options.MaxInputsPerRequest)
            throw new ApiException(StatusCodes.Status413PayloadTooLarge, ApiErrorCodes.PayloadTooLarge,
                $"too many inputs: a batch of {rows.Count} (at most {options.MaxInputsPerRequest} per request)", "inputs");

        var specs = KServeTensors.Outputs(head);
        var requested = fields.TryGetValue("outputs", out var o) && o.ValueKind != JsonValueKind.Null;
        var wanted = requested ? RequestedOutputs(o, specs) : specs;

        var outputs = await engine.PredictAsync(head.Name, rows, parameters, context.RequestAborted);
        if (outputs.Count != rows.Count)
            throw new InvalidOperationException($"engine returned {outputs.Count} output(s) for {rows.Count} input(s) (head {head.Name})");
        var tensorsOut = wanted.Select(spec => (Spec: spec, Tensor: KServeTensors.Output(head, spec.Name, outputs))).ToList();
        if (tensorsOut.FirstOrDefault(t => t.Tensor is null) is { Spec: not null } misfit)
        {
            // Answers that fit no typed output (QA with top_k > 1: a list per input) still reach the client, as JSON strings.
            if (requested)
                throw ApiException.BadRequest($"output '{misfit.Spec.Name}' cannot be made from these answers (a list per input?); leave outputs out to get them as JSON", "outputs");
            tensorsOut = [(new TensorSpec("output", KServeTensors.Bytes, [-1]), KServeTensors.Output(head, "output", outputs))];
        }

        await ApiResponses.WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteStartObject();
            w.WriteString("model_name", head.Name);
            if (id is not null) w.WriteString("id", id);
            w.WriteStartArray("outputs");
            foreach (var (spec, tensor) in tensorsOut)
            {
                var (shape, data) = tensor!.Value;
                w.WriteStartObject();
                w.WriteString("name", spec.Name);
                w.WriteString("datatype", spec.Datatype);
                w.WriteStartArray("shape");
                foreach (var d in shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WritePropertyName("data");
                data.WriteTo(w);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    private HeadStatus Model(HttpContext context)
    {
        var name = context.Request.RouteValues["name"] as string ?? "";
        var head = engine.FindHead(name, withDetails: true)
            ?? throw new ApiException(StatusCodes.Status404NotFound, ApiErrorCodes.UnknownHead, $"no model named '{name}' (models: {string.Join(", ", engine.Heads.Select(h => h.Name))})");
        RequestInfo.Of(context).Head = head.Name;
        if (context.Request.Path.Value!.EndsWith("/infer", StringComparison.Ordinal)) ProtocolHeads.EnsureServable(head, null);
        return head;
    }

    private static void WriteSpecs(System.Text.Json.Utf8JsonWriter w, string property, IEnumerable<TensorSpec> specs)
    {
        w.WriteStartArray(property);
        foreach (var spec in specs)
        {
            w.WriteStartObject();
            w.WriteString("name", spec.Name);
            w.WriteString("datatype", spec.Datatype);
            w.WriteStartArray("shape");
            foreach (var d in spec.Shape) w.WriteNumberValue(d);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    private static List<TensorSpec> RequestedOutputs(JsonElement value, IReadOnlyList<TensorSpec> specs)
    {
        if (value.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest("outputs must be an array of {\"name\": ...}", "outputs");
        var wanted = new List<TensorSpec>();
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            var field = $"outputs[{i++}]";
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String)
                throw ApiException.BadRequest($"{field} must be an object with a name", field);
            var spec = specs.FirstOrDefault(s => s.Name == n.GetString())
                ?? throw ApiException.BadRequest($"this model has no output '{n.GetString()}' (outputs: {string.Join(", ", specs.Select(s => s.Name))})", field);
            wanted.Add(spec);
        }
        return wanted;
    }

    /// <summary>The request's input tensors: BYTES, named as the kind reads them, shapes that hold their data, one batch size.</summary>
    private static List<(string Name, long[] Shape, List<string> Data)> ReadInputs(JsonElement value, string kind)
    {
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() == 0)
            throw ApiException.BadRequest("inputs must be a non-empty array of tensors", "inputs");
        var known = KServeTensors.Inputs(kind).Select(s => s.Name).ToList();
        var tensors = new List<(string Name, long[] Shape, List<string> Data)>();
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            var field = $"inputs[{i++}]";
            if (item.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"{field} must be an object (name, shape, datatype, data)", field);
            string? name = null, datatype = null;
            long[]? shape = null;
            JsonElement? data = null;
            foreach (var p in item.EnumerateObject())
            {
                if (!InputFields.Contains(p.Name)) throw ApiException.BadRequest($"unknown field '{p.Name}'; expected {string.Join(", ", InputFields)}", $"{field}.{p.Name}");
                switch (p.Name)
                {
                    case "name": name = ProtocolHeads.String(p.Value, $"{field}.name"); break;
                    case "datatype": datatype = ProtocolHeads.String(p.Value, $"{field}.datatype"); break;
                    case "shape": shape = Shape(p.Value, $"{field}.shape"); break;
                    case "data": data = p.Value; break;
                }
            }
            if (name is null) throw ApiException.BadRequest($"{field}.name is required", $"{field}.name");
            if (!known.Contains(name))
                throw ApiException.BadRequest($"a {kind} model has no input '{name}' (inputs: {string.Join(", ", known)})", $"{field}.name");
            if (tensors.Any(t => t.Name == name)) throw ApiException.BadRequest($"input '{name}' is given twice", $"{field}.name");
            if (datatype != KServeTensors.Bytes)
                throw ApiException.BadRequest($"{field}.datatype must be BYTES (text), got {datatype ?? "nothing"}", $"{field}.datatype");
            if (shape is null || shape.Length is 0 or > 2) throw ApiException.BadRequest($"{field}.shape must be [batch] or [batch, n]", $"{field}.shape");
            if (data is null) throw ApiException.BadRequest($"{field}.data is required", $"{field}.data");
            var strings = new List<string>();
            Flatten(data.Value, $"{field}.data", strings);
            var expected = shape.Aggregate(1L, (a, b) => a * b);
            if (strings.Count != expected)
                throw ApiException.BadRequest($"shape [{string.Join(", ", shape)}] holds {expected} elements but data has {strings.Count}", $"{field}.data");
            tensors.Add((name, shape, strings));
        }
        var batch = tensors[0].Shape[0];
        if (batch == 0) throw ApiException.BadRequest("the batch is empty (shape[0] is 0)", "inputs[0].shape");
        if (tensors.FirstOrDefault(t => t.Shape[0] != batch) is { Name: not null } other)
            throw ApiException.BadRequest($"input '{other.Name}' has a batch of {other.Shape[0]}, input '{tensors[0].Name}' of {batch}: the first dimension must agree", "inputs");
        return tensors;
    }

    private static long[] Shape(JsonElement value, string field)
    {
        if (value.ValueKind != JsonValueKind.Array) throw ApiException.BadRequest($"{field} must be an array of sizes", field);
        return value.EnumerateArray().Select(d => d.ValueKind == JsonValueKind.Number && d.TryGetInt64(out var n) && n >= 0
            ? n : throw ApiException.BadRequest($"{field} must hold non-negative integers, got {d.GetRawText()}", field)).ToArray();
    }

    // Tensor data may be flat (row-major) or nested; BYTES elements are strings.
    private static void Flatten(JsonElement value, string field, List<string> into)
    {
        if (value.ValueKind == JsonValueKind.String)
        {
            into.Add(value.GetString()!);
            return;
        }
        if (value.ValueKind != JsonValueKind.Array)
            throw ApiException.BadRequest($"BYTES data must be strings, got {JsonKinds.Describe(value.ValueKind)}", field);
        foreach (var item in value.EnumerateArray()) Flatten(item, field, into);
    }

    private static JsonElement Without(JsonElement parameters, string name)
    {
        if (!parameters.TryGetProperty(name, out _)) return parameters;
        var o = JsonObject.Create(parameters)!;
        o.Remove(name);
        return JsonSerializer.SerializeToElement(o);
    }
}
