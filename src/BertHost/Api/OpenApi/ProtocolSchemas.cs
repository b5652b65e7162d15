using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Nodes;

// The JSON of the protocols other clients speak (OpenAI, text-embeddings-inference, the Open Inference Protocol), as
// those projects document it, for the generated OpenAPI document.
namespace BertHost.Api.OpenApi;

// ---- OpenAI ----------------------------------------------------------------------------------------------------

public sealed record EmbeddingsRequest(
    [property: Description("A string or an array of strings (token-id arrays are refused: 400).")] JsonElement Input,
    [property: Description("The embedding head's name; optional when the deployment has one embedding head or protocols.embed_head.")] string? Model,
    [property: Description("float (default) or base64 (little-endian float32).")] string? EncodingFormat,
    [property: Description("Fewer dimensions than the head's: the vector is cut, then normalised again.")] int? Dimensions,
    [property: Description("Ignored.")] string? User);

public sealed record EmbeddingsResponse(
    [property: Description("list")] string Object,
    IReadOnlyList<EmbeddingData> Data,
    [property: Description("The head that answered.")] string Model,
    EmbeddingsUsage Usage);

public sealed record EmbeddingData(
    [property: Description("embedding")] string Object,
    int Index,
    [property: Description("An array of floats, or with encoding_format base64 a base64 string of little-endian float32.")] JsonElement Embedding);

public sealed record EmbeddingsUsage(
    [property: Description("Tokens the body read for all inputs, special tokens included.")] long PromptTokens, long TotalTokens);

[Description("OpenAI's error shape, on /v1/embeddings.")]
public sealed record OpenAiError(OpenAiErrorBody Error);

public sealed record OpenAiErrorBody(string Message,
    [property: Description("invalid_request_error, authentication_error, permission_error, not_found_error, rate_limit_error or server_error.")] string Type,
    [property: Description("The offending field, or null.")] string? Param,
    [property: Description("The host's error code (bad_request, unknown_head, queue_full...).")] string Code);

// ---- text-embeddings-inference --------------------------------------------------------------------------------

public sealed record EmbedRequest(
    [property: Description("A string or an array of strings.")] JsonElement Inputs,
    [property: Description("L2-normalise (default: the head's option, true unless configured).")] bool? Normalize,
    [property: Description("false: an input longer than the head accepts is refused (422); default: the deployment's oversized policy.")] bool? Truncate,
    [property: Description("Right (default) keeps the start of a long text, Left its end.")] string? TruncationDirection,
    [property: Description("Not supported (400 when set).")] string? PromptName,
    [property: Description("BertHost: fewer dimensions than the head's (cut, then normalised).")] int? Dimensions,
    [property: Description("BertHost: the embedding head; default protocols.embed_head or the only embedding head.")] string? Model);

public sealed record RerankRequest(string Query, IReadOnlyList<string> Texts,
    [property: Description("The logit instead of the probability.")] bool? RawScores,
    [property: Description("Echo each text in its rank.")] bool? ReturnText,
    [property: Description("Accepted; long pairs are truncated by the deployment's oversized policy.")] bool? Truncate,
    [property: Description("Only Right.")] string? TruncationDirection,
    [property: Description("BertHost: the text-classification head (a cross-encoder); default protocols.rerank_head or the only one.")] string? Model);

[Description("One text's rank: a one-label head's sigmoid (or logit), else the last label's probability (or logit).")]
public sealed record Rank(int Index, float Score, string? Text);

public sealed record TokenizeRequest(
    [property: Description("A string or an array of strings.")] JsonElement Inputs,
    [property: Description("Add [CLS] and [SEP] (default true).")] bool? AddSpecialTokens,
    [property: Description("Not supported (400 when set).")] string? PromptName);

public sealed record SimpleToken(int Id,
    [property: Description("The slice of the input the token covers (a special token: its name).")] string Text,
    bool Special,
    [property: Description("Character offsets into the input; null for special tokens.")] int? Start, int? Stop);

[Description("text-embeddings-inference's error shape, on /embed, /rerank and /tokenize.")]
public sealed record TeiError(string Error,
    [property: Description("validation, overloaded, backend or unhealthy.")] string ErrorType);

// ---- Open Inference Protocol (KServe v2) ------------------------------------------------------------------------

public sealed record InferenceRequest(string? Id,
    [property: Description("Passed to the head as request parameters (e.g. top_k).")] JsonObject? Parameters,
    IReadOnlyList<RequestInput> Inputs,
    [property: Description("Which outputs to return; default all.")] IReadOnlyList<RequestOutput>? Outputs);

public sealed record RequestInput(
    [property: Description("A field of the head's input: text, text_pair, question, context, choices, tokens (see the model's metadata).")] string Name,
    [property: Description("[batch] or [batch, n] (choices, tokens).")] IReadOnlyList<long> Shape,
    [property: Description("BYTES")] string Datatype,
    JsonObject? Parameters,
    [property: Description("Strings, flat (row-major) or nested.")] JsonElement Data);

public sealed record RequestOutput(string Name, JsonObject? Parameters);

public sealed record InferenceResponse(string ModelName, string? Id, IReadOnlyList<ResponseOutput> Outputs);

public sealed record ResponseOutput(string Name,
    [property: Description("BYTES, FP32 or INT64.")] string Datatype,
    IReadOnlyList<long> Shape,
    [property: Description("Row-major.")] JsonElement Data);

public sealed record MetadataTensor(string Name, string Datatype, IReadOnlyList<long> Shape);

public sealed record ModelMetadata(string Name, string Platform, IReadOnlyList<MetadataTensor> Inputs, IReadOnlyList<MetadataTensor> Outputs);

public sealed record ServerMetadata(string Name, string Version, IReadOnlyList<string> Extensions);

public sealed record ServerLive(bool Live);

public sealed record ServerReady(bool Ready);

public sealed record ModelReady(string Name, bool Ready);

[Description("The Open Inference Protocol's error shape, on /v2 routes.")]
public sealed record KServeError(string Error);
