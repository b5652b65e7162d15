using System.Security.Cryptography.X509Certificates;
using BertHost.Core.Config;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace BertHost.Api;

/// <summary>Kestrel's TLS settings from <c>host.https</c>: the server certificate, and client certificates checked against a CA (mutual TLS).</summary>
internal static class HttpsSetup
{
    public static void Apply(HttpsConnectionAdapterOptions tls, HttpsSection https)
    {
        tls.ServerCertificate = LoadServerCertificate(https);
        tls.ClientCertificateMode = https.ClientCertificates switch
        {
            "require" => ClientCertificateMode.RequireCertificate,
            "allow" => ClientCertificateMode.AllowCertificate,
            _ => ClientCertificateMode.NoCertificate,
        };
        if (https.ClientCa is { } caFile)
        {
            var ca = X509Certificate2.CreateFromPemFile(caFile);
            tls.ClientCertificateValidation = (certificate, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(certificate);
            };
        }
    }

    private static X509Certificate2 LoadServerCertificate(HttpsSection https) => https.KeyFile is { } key
        ? X509Certificate2.CreateFromPemFile(https.Certificate, key)
        : X509CertificateLoader.LoadPkcs12FromFile(https.Certificate, https.Password);
}
