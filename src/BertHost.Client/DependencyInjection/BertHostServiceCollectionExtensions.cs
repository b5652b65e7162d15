using BertHost.Client;
using BertHost.Client.DependencyInjection;
using BertHost.Client.Embeddings;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers <see cref="BertHostClient"/> (a typed client of <c>IHttpClientFactory</c>) and its embedding generator.</summary>
public static class BertHostServiceCollectionExtensions
{
    /// <summary>The name of the client's <c>HttpClient</c> (and of its resilience pipeline).</summary>
    public const string HttpClientName = "BertHost";

    /// <summary>
    /// Registers <see cref="BertHostClient"/> over an <c>HttpClient</c> from <c>IHttpClientFactory</c> with the standard
    /// resilience handler configured by <see cref="BertHostResilience"/>: timeouts per attempt and per call, retries of
    /// repeatable requests after 429, 503 with <c>Retry-After</c>, network errors and attempt timeouts (honouring
    /// <c>Retry-After</c>), and a circuit breaker over the same conditions. The options are validated when the client is first made.
    /// Returns the <see cref="IHttpClientBuilder"/> to add handlers (e.g. a primary handler with client certificates).
    /// </summary>
    public static IHttpClientBuilder AddBertHostClient(this IServiceCollection services, Action<BertHostClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<BertHostClientOptions>().Configure(configure);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BertHostClientOptions>, OptionsValidator>());
        var builder = services.AddHttpClient(HttpClientName, (provider, http) =>
        {
            var options = provider.GetRequiredService<IOptions<BertHostClientOptions>>().Value;
            http.BaseAddress = BertHostClient.DirectoryOf(options.BaseAddress!);
            // The client bounds each call by options.Timeout (reading the body included); HttpClient's own 100 s
            // would cut a retried call short.
            http.Timeout = Timeout.InfiniteTimeSpan;
        });
        builder.AddStandardResilienceHandler().Configure((HttpStandardResilienceOptions resilience, IServiceProvider provider) =>
            BertHostResilience.Configure(resilience, provider.GetRequiredService<IOptions<BertHostClientOptions>>().Value));
        builder.AddTypedClient((http, provider) => new BertHostClient(http, provider.GetRequiredService<IOptions<BertHostClientOptions>>().Value));
        return builder;
    }

    /// <summary>
    /// Registers <see cref="IEmbeddingGenerator{TInput,TEmbedding}"/> over the host's OpenAI route (needs
    /// <see cref="AddBertHostClient"/>): <paramref name="head"/> is the embedding head (null: the host's default),
    /// <paramref name="dimensions"/> the width asked for when a call names none.
    /// </summary>
    public static IServiceCollection AddBertHostEmbeddingGenerator(this IServiceCollection services, string? head = null, int? dimensions = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        // Transient, as the typed client it wraps: IHttpClientFactory then recycles its handlers.
        services.AddTransient<IEmbeddingGenerator<string, Embedding<float>>>(provider =>
            new BertHostEmbeddingGenerator(provider.GetRequiredService<BertHostClient>(), head, dimensions));
        return services;
    }

    /// <summary><see cref="BertHostClientOptions.Validate"/>'s message as an options validation failure.</summary>
    private sealed class OptionsValidator : IValidateOptions<BertHostClientOptions>
    {
        public ValidateOptionsResult Validate(string? name, BertHostClientOptions options)
        {
            try
            {
                options.Validate();
                return ValidateOptionsResult.Success;
            }
            catch (ArgumentException e)
            {
                return ValidateOptionsResult.Fail(e.Message);
            }
        }
    }
}
