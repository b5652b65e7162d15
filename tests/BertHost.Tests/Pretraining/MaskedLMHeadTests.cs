using System.Text.Json;
using BertHost.Core.Bert;
using BertHost.Core.Checkpoints;
using BertHost.Core.Pretraining;
using BertHost.Core.Text;
using BertHost.Tests.Support;
using static TorchSharp.torch;
using BertHost.Core.Body;

namespace BertHost.Tests.Pretraining;

/// <summary>The masked-LM head against the independent reference (tests/reference/make_mlm_fixtures.py).</summary>
public sealed class MaskedLMHeadTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("berthost-mlm-");
    private static readonly string PreTraining = ReferenceOutputs.ModelFolder("tiny-bert-pt");
    private static readonly JsonElement Expected = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("models", "tiny-bert-pt.mlm.expected.json"))).RootElement.GetProperty("cases");

    public void Dispose() => _dir.Delete(recursive: true);

    private static Tensor Logits(BertForMaskedLM model, int[] ids)
    {
        using var noGrad = no_grad();
        model.eval();
        using var input = tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length], ScalarType.Int64);
        using var types = zeros_like(input);
        using var mask = ones_like(input);
        using var logits = model.call(input, types, mask);
        return logits.squeeze(0).clone();
    }

    private static int[] Ids(string caseName) => Expected.GetProperty(caseName).GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();

    [Theory]
    [InlineData("one_mask")]
    [InlineData("two_masks")]
    [InlineData("no_special_inside")]
    public void Logits_match_the_reference_BertForPreTraining(string caseName)
    {
        var (model, report) = MaskedLMCheckpoint.Load(PreTraining);
        using (model)
        {
            Assert.True(report.HeadLoaded);
            Assert.True(report.StoredDecoderChecked);   // the .bin stores the tied decoder: checked equal to the embeddings
            using var logits = Logits(model, Ids(caseName));
            using var expected = ReferenceOutputs.ToTensor(Expected.GetProperty(caseName).GetProperty("logits"));
            Assert.Equal(expected.shape, logits.shape);
            var diff = (logits - expected).abs().max().item<float>();
            Assert.True(diff <= 1e-4, $"max |diff| {diff}");
        }
    }

    [Theory]
    [InlineData("one_mask", "the old man went to the [MASK] with his dog")]
    [InlineData("two_masks", "[MASK] dog is very [MASK] today")]
    public void Fill_mask_reports_what_the_pipeline_does(string caseName, string text)
    {
        var (model, _) = MaskedLMCheckpoint.Load(PreTraining);
        using (model)
        {
            var fill = new FillMask(model, BertTextTokenizer.FromFolder(PreTraining), CPU);
            var masks = fill.Predict(text, topK: 5);
            var expected = Expected.GetProperty(caseName).GetProperty("fill_mask");
            Assert.Equal(expected.GetArrayLength(), masks.Count);
            for (var m = 0; m < masks.Count; m++)
            {
                var want = expected[m].EnumerateArray().ToList();
                Assert.Equal(want.Select(w => w.GetProperty("token").GetInt32()), masks[m].Select(c => c.Token));
                for (var k = 0; k < want.Count; k++)
                {
                    Assert.Equal(want[k].GetProperty("score").GetDouble(), masks[m][k].Score, 5);
                    Assert.Equal(want[k].GetProperty("token_str").GetString(), masks[m][k].TokenStr);
                    Assert.Equal(want[k].GetProperty("sequence").GetString(), masks[m][k].Sequence);
                }
            }
        }
    }

    [Fact]
    public void Saved_folders_have_the_hf_layout_and_the_tie_survives_save_and_load()
    {
        var (model, _) = MaskedLMCheckpoint.Load(PreTraining);
        var saved = Path.Combine(_dir.FullName, "mlm");
        using (model)
        {
            MaskedLMCheckpoint.Save(model, PreTraining, saved);
            using var before = Logits(model, Ids("one_mask"));

            using (var file = CheckpointFiles.OpenFolder(saved))
            {
                var names = file.Tensors.Select(t => t.Name).ToHashSet();
                Assert.Contains("bert.embeddings.word_embeddings.weight", names);
                Assert.Contains("cls.predictions.transform.dense.weight", names);
                Assert.Contains("cls.predictions.transform.LayerNorm.weight", names);
                Assert.Contains("cls.predictions.bias", names);
                // Like transformers' safetensors files: the tied decoder is not stored twice.
                Assert.DoesNotContain(BertForMaskedLM.DecoderWeightKey, names);
            }
            Assert.Contains("\"BertForMaskedLM\"", File.ReadAllText(Path.Combine(saved, "config.json")));

            var (reloaded, report) = MaskedLMCheckpoint.Load(saved);
            using (reloaded)
            {
                Assert.True(report.HeadLoaded);
                using var after = Logits(reloaded, Ids("one_mask"));
                Assert.Equal(0f, (after - before).abs().max().item<float>());
                // Still tied after loading: changing the embeddings changes the decoder.
                using (no_grad()) reloaded.bert.embeddings.word_embeddings.weight![7].add_(1.0);
                using var changed = Logits(reloaded, Ids("one_mask"));
                Assert.True((changed - after).select(1, 7).abs().max().item<float>() > 1e-3);
            }
        }
        // The body of the saved folder is served like any other (bert.* keys, cls.* set aside for heads).
        using var body = BertBody.Load(saved);
        Assert.Contains("cls.predictions.bias", body.LoadReport.HeadKeys);
    }

    [Fact]
    public void A_plain_body_gets_a_fresh_head_and_a_stored_decoder_that_is_not_tied_is_refused()
    {
        var (model, report) = MaskedLMCheckpoint.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        using (model)
        {
            Assert.False(report.HeadLoaded);
            Assert.Equal(0f, model.cls.predictions.bias.abs().max().item<float>());
            Assert.Equal(1f, model.cls.predictions.transform.LayerNorm.weight!.mean().item<float>());

            // A checkpoint whose decoder differs from the embeddings.
            var untied = Path.Combine(_dir.FullName, "untied");
            MaskedLMCheckpoint.Save(model, ReferenceOutputs.ModelFolder("tiny-bert"), untied);
            var tensors = new Dictionary<string, Tensor>();
            using (var file = CheckpointFiles.OpenFolder(untied))
                foreach (var t in file.Tensors) tensors[t.Name] = file.Read(t.Name);
            tensors[BertForMaskedLM.DecoderWeightKey] = tensors["bert.embeddings.word_embeddings.weight"].add(0.5);
            SafetensorsWriter.Save(Path.Combine(untied, "model.safetensors"), tensors);
            foreach (var t in tensors.Values) t.Dispose();
            var e = Assert.Throws<CheckpointException>(() => MaskedLMCheckpoint.Load(untied));
            Assert.Contains("cls.predictions.decoder.weight differs from the word embeddings", e.Message);
        }
    }

    [Fact]
    public void A_fresh_model_has_the_body_init_model_makes_with_the_same_seed()
    {
        var config = BertSizes.Create("tiny", 405);
        using var mlm = BertForMaskedLM.CreateRandom(config, seed: 7);
        using var body = new BertModel(config);
        BertInitializer.Initialize(body, 7);
        var expected = body.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in mlm.bert.named_parameters())
            Assert.True(p.eq(expected[name]).all().item<bool>(), name);
        // transformers' head initialisation: N(0, 0.02) transform, zero vocabulary bias.
        Assert.InRange(mlm.cls.predictions.transform.dense.weight!.std().item<float>(), 0.018, 0.022);
        Assert.Equal(0f, mlm.cls.predictions.bias.abs().max().item<float>());
    }
}
