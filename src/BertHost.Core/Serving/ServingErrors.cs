namespace BertHost.Core.Serving;

/// <summary>Why a request could not be served; the HTTP layer maps each to its status code.</summary>
public enum ServingError
{
    /// <summary>Malformed request (not JSON, wrong shape): 400.</summary>
    BadRequest,
    /// <summary>No head of that name: 404.</summary>
    UnknownHead,
    /// <summary>Request too large (bytes or number of inputs): 413.</summary>
    PayloadTooLarge,
    /// <summary>An input the head refuses (missing field, too long when refusing): 422.</summary>
    InvalidInput,
    /// <summary>The queue is full: 429.</summary>
    QueueFull,
    /// <summary>The head failed to load or failed while serving, or the host is not ready / shutting down: 503.</summary>
    Unavailable,
    /// <summary>The head was trained on another body than the one served: 409.</summary>
    StaleHead,
    /// <summary>No such resource (e.g. a job id): 404.</summary>
    NotFound,
    /// <summary>The resource is not in a state that allows the request (e.g. cancelling a finished job): 409.</summary>
    Conflict,
    /// <summary>The caller's key lacks the scope the request needs: 403.</summary>
    Forbidden,
    /// <summary>A limit on the work of one request (tokens, response size) is exceeded: 413.</summary>
    TooMuchWork,
}

/// <summary>A request-level failure with a message meant for the client and, where known, the field at fault.</summary>
public sealed class ServingException(ServingError error, string message, string? field = null, Exception? inner = null)
    : Exception(message, inner)
{
    public ServingError Error { get; } = error;
    public string? Field { get; } = field;

    /// <summary>
    /// Whether the same request may succeed later (a full queue, a host stopping): only then is a client told to retry
    /// (<c>Retry-After</c>). A head that failed to load or failed on this input does not clear by retrying.
    /// </summary>
    public bool Transient { get; init; } = error is ServingError.QueueFull;
}
