using BertHost.Core.Config;
using BertHost.Core.Serving;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace BertHost.Api;

/// <summary>
/// OpenTelemetry export when the deployment names a collector (<c>telemetry.otlp_endpoint</c>): the serving spans
/// (<see cref="ServingTelemetry"/>) under ASP.NET Core's request spans, and the instruments of
/// <see cref="ServingMetrics"/>, over OTLP. <c>/metrics</c> serves the same measurements either way.
/// </summary>
internal static class TelemetrySetup
{
    public static void AddHostTelemetry(this IServiceCollection services, TelemetrySection telemetry)
    {
        if (telemetry.OtlpEndpoint is not { } endpoint) return;
        var protocol = telemetry.OtlpProtocol == "http/protobuf" ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        // http/protobuf posts to a path per signal under the collector's base address; gRPC takes the address as it is.
        Uri For(string signal) => protocol == OtlpExportProtocol.HttpProtobuf ? new Uri(endpoint, signal) : endpoint;
        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(telemetry.ServiceName))
            .WithTracing(t => t
                .AddSource(ServingTelemetry.Name)
                .AddAspNetCoreInstrumentation()
                .AddOtlpExporter(o => { o.Endpoint = For("v1/traces"); o.Protocol = protocol; }))
            .WithMetrics(m => m
                .AddMeter(ServingMetrics.MeterName)
                .AddOtlpExporter(o => { o.Endpoint = For("v1/metrics"); o.Protocol = protocol; }));
    }
}
