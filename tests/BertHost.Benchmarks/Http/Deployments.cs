using BertHost.Benchmarks.Harness;

namespace BertHost.Benchmarks.Http;

/// <summary>Deployment YAML for the HTTP and memory suites: one body, N heads of the shipped plugins (fresh weights).</summary>
public static class Deployments
{
    /// <summary>The four heads a multi-head request asks for; all encode a plain text to the same tokens (one body row).</summary>
    public static readonly string[] FourHeads = ["sentiment", "topic", "ner", "toxicity"];

    public static string FourHeadYaml(string modelFolder)
    {
        var plugins = Path.Combine(Paths.RepoRoot(), "plugins");
        return Header(modelFolder) + $$"""
            heads:
              - { name: sentiment, kind: text-classification, plugin: {{plugins}}/BertHost.Heads.Classification, labels: [negative, positive], options: { pooling: cls } }
              - { name: topic, kind: text-classification, plugin: {{plugins}}/BertHost.Heads.Classification, labels: [a, b, c, d], options: { pooling: mean } }
              - { name: ner, kind: token-classification, plugin: {{plugins}}/BertHost.Heads.TokenClassification, labels: [O, B-PER, I-PER, B-LOC, I-LOC] }
              - { name: toxicity, kind: text-classification, plugin: {{plugins}}/BertHost.Heads.Classification, labels: [ok, toxic], options: { pooling: max } }

            """;
    }

    /// <summary><paramref name="count"/> classification heads with a hidden layer of <paramref name="hidden"/> units each.</summary>
    public static string ClassifierHeadsYaml(string modelFolder, int count, int hidden)
    {
        var plugin = Path.Combine(Paths.RepoRoot(), "plugins", "BertHost.Heads.Classification");
        var heads = string.Concat(Enumerable.Range(0, count).Select(i =>
            $"  - {{ name: head{i}, kind: text-classification, plugin: {plugin}, labels: [no, yes], options: {{ pooling: cls, hidden_layers: [{hidden}] }} }}\n"));
        return Header(modelFolder) + "heads:\n" + heads;
    }

    private static string Header(string modelFolder) => $"""
        host:
          max_inputs_per_request: 256
        batching:
          max_queued_inputs: 100000
        body:
          checkpoint: {modelFolder}
          device: cpu
          dtype: float32

        """;
}
