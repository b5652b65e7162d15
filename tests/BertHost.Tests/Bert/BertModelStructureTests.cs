using BertHost.Core.Bert;
using static TorchSharp.torch;

namespace BertHost.Tests.Bert;

public class BertModelStructureTests
{
    private static readonly BertConfig Tiny = new()
    {
        VocabSize = 50, HiddenSize = 16, NumHiddenLayers = 2, NumAttentionHeads = 4, IntermediateSize = 32,
        MaxPositionEmbeddings = 20, TypeVocabSize = 2,
    };

    [Fact]
    public void Parameter_names_are_the_Hugging_Face_checkpoint_keys()
    {
        using var model = new BertModel(Tiny);
        var names = model.named_parameters().Select(p => p.name).OrderBy(n => n, StringComparer.Ordinal).ToList();

        var expected = new List<string>
        {
            "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
            "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias", "pooler.dense.weight", "pooler.dense.bias",
        };
        for (var i = 0; i < 2; i++)
        {
            foreach (var p in new[] { "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                         "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm" })
            {
                expected.Add($"encoder.layer.{i}.{p}.weight");
                expected.Add($"encoder.layer.{i}.{p}.bias");
            }
        }
        Assert.Equal(expected.OrderBy(n => n, StringComparer.Ordinal), names);
        Assert.Equal(new long[] { 32, 16 }, model.named_parameters().Single(p => p.name == "encoder.layer.1.intermediate.dense.weight").parameter.shape);
    }

    [Fact]
    public void Without_pooler_there_are_no_pooler_weights_and_pooled_output_explains_why()
    {
        using var model = new BertModel(Tiny, addPoolingLayer: false);
        Assert.DoesNotContain(model.named_parameters(), p => p.name.StartsWith("pooler.", StringComparison.Ordinal));
        model.eval();
        using var ids = tensor(new long[] { 2, 5, 3 }).unsqueeze(0);
        using var types = zeros_like(ids);
        using var mask = ones_like(ids);
        using var output = model.Forward(ids, types, mask, outputHiddenStates: false);
        Assert.False(output.HasPooledOutput);
        var error = Assert.Throws<InvalidOperationException>(() => output.PooledOutput);
        Assert.Contains("no pooler", error.Message);
    }

    [Fact]
    public void Hidden_states_hold_the_embeddings_and_every_layer_and_end_with_the_last_hidden_state()
    {
        using var model = new BertModel(Tiny);
        model.eval();
        using var ids = tensor(new long[] { 2, 7, 9, 3, 2, 8, 3, 0 }).view(2, 4);
        using var types = zeros_like(ids);
        using var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 0 }).view(2, 4);
        using var output = model.Forward(ids, types, mask, outputHiddenStates: true);
        Assert.Equal(3, output.HiddenStates!.Count);
        Assert.Same(output.LastHiddenState, output.HiddenState(-1));
        Assert.Equal(new long[] { 2, 4, 16 }, output.HiddenState(0).shape);
        Assert.Throws<ArgumentOutOfRangeException>(() => output.HiddenState(3));
    }

    [Fact]
    public void Inputs_longer_than_the_position_table_are_refused_with_the_limit()
    {
        using var model = new BertModel(Tiny);
        using var ids = zeros(1, 21, dtype: ScalarType.Int64);
        var error = Assert.Throws<ArgumentException>(() => model.Forward(ids, ids, ones_like(ids), false));
        Assert.Contains("max_position_embeddings (20)", error.Message);
    }

    [Theory]
    [InlineData("""{"hidden_size": 30, "num_attention_heads": 4}""", "hidden_size (30) must be a multiple of num_attention_heads (4)")]
    [InlineData("""{"hidden_act": "quick_gelu"}""", "hidden_act 'quick_gelu' is not supported")]
    [InlineData("""{"position_embedding_type": "relative_key"}""", "position_embedding_type 'relative_key' is not supported")]
    [InlineData("""{"model_type": "roberta"}""", "model_type 'roberta' is not a BERT checkpoint")]
    [InlineData("""{"num_hidden_layers": 0}""", "num_hidden_layers must be positive")]
    public void Configs_the_encoder_cannot_honour_are_rejected_naming_the_field(string json, string expected)
    {
        var problems = BertConfig.Parse(json).Validate();
        Assert.Contains(problems, p => p.Contains(expected));
    }

    [Fact]
    public void Config_file_errors_name_the_file()
    {
        var dir = Directory.CreateTempSubdirectory("berthost-config-");
        try
        {
            var path = Path.Combine(dir.FullName, "config.json");
            File.WriteAllText(path, "{\"hidden_size\": \"big\"}");
            var error = Assert.Throws<BertConfigException>(() => BertConfig.Load(path));
            Assert.Contains(path, error.Message);
            Assert.Contains("hidden_size", error.Message);
            var missing = Assert.Throws<BertConfigException>(() => BertConfig.Load(Path.Combine(dir.FullName, "nope.json")));
            Assert.Contains("file not found", missing.Message);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void A_model_built_uninitialised_reads_the_weights_loaded_into_its_parameters()
    {
        // Embeddings are built with a one-row table whose weight is then swapped: what a loader writes into the
        // registered parameters must be what forward reads, and the padding row must still get no gradient.
        var config = Tiny with { PadTokenId = 3 };
        manual_seed(7);
        using var reference = new BertModel(config);
        BertModel model;
        using (BertLayers.Uninitialized()) model = new BertModel(config);
        using (model)
        {
            var loaded = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            Assert.Equal(reference.named_parameters().Select(p => (p.name, string.Join(",", p.parameter.shape))),
                model.named_parameters().Select(p => (p.name, string.Join(",", p.parameter.shape))));
            using (no_grad())
                foreach (var (name, parameter) in reference.named_parameters()) loaded[name].copy_(parameter);
            reference.eval();
            model.eval();
            using var ids = tensor(new long[] { 2, 3, 49, 3, 7, 0 }, [2, 3]);
            using var types = tensor(new long[] { 0, 0, 1, 0, 1, 1 }, [2, 3]);
            using var mask = ones(2, 3, ScalarType.Int64);
            using var expected = reference.Forward(ids, types, mask, outputHiddenStates: false);
            using var actual = model.Forward(ids, types, mask, outputHiddenStates: false);
            Assert.Equal(0, (actual.LastHiddenState - expected.LastHiddenState).abs().max().item<float>());

            using var direction = randn(expected.LastHiddenState.shape); // a plain sum has no gradient through LayerNorm
            (expected.LastHiddenState * direction).sum().backward();
            (actual.LastHiddenState * direction).sum().backward();
            var grad = model.embeddings.word_embeddings.weight!.grad!;
            Assert.Equal(0, grad[3].abs().sum().item<float>());
            Assert.True(grad[2].abs().sum().item<float>() > 0);
            Assert.Equal(0, (grad - reference.embeddings.word_embeddings.weight!.grad!).abs().max().item<float>());
        }
    }
}
