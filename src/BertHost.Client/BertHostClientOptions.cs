namespace BertHost.Client;

/// <summary>Where the host is, how to authenticate, and how long and how often to try.</summary>
public sealed class BertHostClientOptions
{
    /// <summary>The host's address, e.g. <c>http://127.0.0.1:5080</c> (a path prefix behind a proxy is kept).</summary>
    public Uri? BaseAddress { get; set; }

    /// <summary>The API key; null sends none (a host without an <c>auth:</c> section, or anonymous scopes).</summary>
    public string? ApiKey { get; set; }

    /// <summary>Which header carries <see cref="ApiKey"/>.</summary>
    public ApiKeyHeader ApiKeyHeader { get; set; } = ApiKeyHeader.Bearer;

    /// <summary>
    /// How long one attempt may take. The host cancels a request after its <c>request_timeout_seconds</c> (default 60 s)
    /// and answers 504, so this is only a backstop for a host that stopped answering.
    /// </summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>How long a call may take, retries and their waits included.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Retries of a request that may be repeated (reads, predictions, embeddings) after 429, a 503 with
    /// <c>Retry-After</c> (the host is stopping), a network error or an attempt timeout; 0 turns retries off.
    /// Job submissions, cancellations and promotions are never retried, nor is any other 4xx or 5xx.
    /// </summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>The first retry's wait when the answer has no <c>Retry-After</c> (then exponential, with jitter).</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Copies every setting to <paramref name="target"/>.</summary>
    public void CopyTo(BertHostClientOptions target)
    {
        ArgumentNullException.ThrowIfNull(target);
        target.BaseAddress = BaseAddress;
        target.ApiKey = ApiKey;
        target.ApiKeyHeader = ApiKeyHeader;
        target.AttemptTimeout = AttemptTimeout;
        target.Timeout = Timeout;
        target.MaxRetries = MaxRetries;
        target.RetryDelay = RetryDelay;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting that cannot work.</summary>
    public void Validate()
    {
        if (BaseAddress is null) throw new ArgumentException("BaseAddress is required (e.g. http://127.0.0.1:5080)", nameof(BaseAddress));
        if (!BaseAddress.IsAbsoluteUri || BaseAddress.Scheme is not ("http" or "https"))
            throw new ArgumentException($"BaseAddress must be an absolute http:// or https:// address, got '{BaseAddress}'", nameof(BaseAddress));
        if (ApiKey is { } key && (key.Length == 0 || key.Any(char.IsControl) || key.Trim() != key))
            throw new ArgumentException("ApiKey must not be empty, contain control characters or surrounding spaces", nameof(ApiKey));
        if (AttemptTimeout <= TimeSpan.Zero) throw new ArgumentException($"AttemptTimeout must be positive, got {AttemptTimeout}", nameof(AttemptTimeout));
        if (Timeout <= AttemptTimeout)
            throw new ArgumentException($"Timeout ({Timeout}) must be longer than AttemptTimeout ({AttemptTimeout})", nameof(Timeout));
        if (MaxRetries is < 0 or > 100) throw new ArgumentException($"MaxRetries must be 0 to 100, got {MaxRetries}", nameof(MaxRetries));
        if (RetryDelay < TimeSpan.Zero) throw new ArgumentException($"RetryDelay must not be negative, got {RetryDelay}", nameof(RetryDelay));
    }
}

/// <summary>The header an API key travels in; the host reads either.</summary>
public enum ApiKeyHeader
{
    /// <summary><c>Authorization: Bearer KEY</c>.</summary>
    Bearer,

    /// <summary><c>X-Api-Key: KEY</c>.</summary>
    XApiKey,
}
