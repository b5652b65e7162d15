using BertHost.Core.Bert;
using BertHost.Tests.Support;
using static TorchSharp.torch;
using BertHost.Core.Body;
using BertHost.Core.Checkpoints;

namespace BertHost.Tests.Bert;

public class BertBodyLoadingTests
{
    private static Tensor SingleOutput(BertBody body)
    {
        var c = ReferenceOutputs.Load().Case("single");
        using var ids = ReferenceOutputs.ToTensor(c.GetProperty("input_ids"), ScalarType.Int64);
        using var types = ReferenceOutputs.ToTensor(c.GetProperty("token_type_ids"), ScalarType.Int64);
        using var mask = ReferenceOutputs.ToTensor(c.GetProperty("attention_mask"), ScalarType.Int64);
        using var output = body.Forward(ids, types, mask);
        return output.LastHiddenState.clone();
    }

    [Theory]
    [InlineData("tiny-bert-pt")]            // pytorch_model.bin, bert. prefix, tied cls.* keys
    [InlineData("tiny-bert-sharded")]       // two safetensors shards + index, bert. prefix
    [InlineData("tiny-bert-legacy-names")]  // LayerNorm gamma/beta, position_ids buffer
    [InlineData("tiny-bert-legacy-format")] // pre-1.6 torch.save (how bert-base-uncased is published)
    public void Every_checkpoint_format_gives_identical_outputs_and_fingerprint(string folder)
    {
        using var reference = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        using var other = BertBody.Load(ReferenceOutputs.ModelFolder(folder));
        using var a = SingleOutput(reference);
        using var b = SingleOutput(other);
        Assert.Equal(0.0, ReferenceOutputs.MaxAbsDiff(a, b));
        Assert.Equal(reference.Fingerprint, other.Fingerprint);
        Assert.StartsWith("sha256:", reference.Fingerprint);
        Assert.Equal(71, reference.Fingerprint.Length);
    }

    [Fact]
    public void Pretraining_keys_are_set_aside_for_heads_and_the_prefix_is_recognised()
    {
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert-pt"));
        var report = body.LoadReport;
        Assert.True(report.Prefixed);
        Assert.True(report.HasPooler);
        Assert.Contains("cls.predictions.decoder.weight", report.HeadKeys);
        Assert.Contains("cls.seq_relationship.weight", report.HeadKeys);
        Assert.All(report.HeadKeys, k => Assert.StartsWith("cls.", k));
        Assert.Empty(report.UnexpectedKeys);
        Assert.Equal(body.Model.named_parameters().Count(), report.LoadedTensors);
    }

    [Fact]
    public void A_checkpoint_without_pooler_loads_a_body_without_pooler_and_keeps_classifier_keys()
    {
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert-no-pooler"));
        Assert.False(body.Model.HasPooler);
        Assert.False(body.LoadReport.HasPooler);
        Assert.Equal(["classifier.bias", "classifier.weight"], body.LoadReport.HeadKeys);
        Assert.Equal(["O", "B-ENT", "I-ENT"], body.Config.Id2Label!.OrderBy(kv => int.Parse(kv.Key)).Select(kv => kv.Value));
    }

    [Fact]
    public void Different_weights_give_a_different_fingerprint()
    {
        using var f32 = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        using var f16 = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert-f16"));
        Assert.NotEqual(f32.Fingerprint, f16.Fingerprint);
    }

    [Fact]
    public void The_fingerprint_does_not_depend_on_the_runtime_dtype()
    {
        using var f32 = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        using var bf16 = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { DType = "bfloat16" });
        Assert.Equal(f32.Fingerprint, bf16.Fingerprint);
    }

    [Fact]
    public void The_fingerprint_is_of_the_stored_weights_when_the_int8_path_drops_their_float_copies()
    {
        // The hash runs on another thread while the kernels are chosen; dropping the float weights waits for it.
        using var f32 = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        using var int8 = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { Quantize = QuantizeModes.DynamicInt8 });
        Assert.NotNull(int8.Quantized);
        Assert.Equal(0, int8.Model.encoder.layer[0].intermediate.dense.weight!.NumberOfElements);
        Assert.Equal(f32.Fingerprint, int8.Fingerprint);
        Assert.Equal(f32.EncoderFingerprint, int8.EncoderFingerprint);
    }

    [Fact]
    public void A_prepared_body_has_its_tokenizer_before_its_weights_and_loads_the_same_body()
    {
        var prepared = BertBody.Prepare(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { MaxSequenceLength = 16 });
        Assert.Equal(16, prepared.MaxSequenceLength);
        var ids = prepared.Tokenizer.Encode("the dog", null, new BertHost.Abstractions.Text.EncodeOptions())[0].InputIds;
        using var body = prepared.Load();
        using var loaded = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        Assert.Same(prepared.Tokenizer, body.Tokenizer);
        Assert.Equal(16, body.MaxSequenceLength);
        Assert.Equal(loaded.Fingerprint, body.Fingerprint);
        Assert.Equal(loaded.Tokenizer.Encode("the dog", null, new BertHost.Abstractions.Text.EncodeOptions())[0].InputIds, ids);
    }

    [Fact]
    public void Preparing_a_broken_folder_fails_before_any_weight_is_read()
    {
        var error = Assert.Throws<BodyLoadException>(() => BertBody.Prepare(TestPaths.Fixture("models", "broken", "bad-config")));
        Assert.Contains("config.json", error.Message);
        var truncated = BertBody.Prepare(TestPaths.Fixture("models", "broken", "truncated"));
        Assert.Contains("model.safetensors", Assert.Throws<BodyLoadException>(() => truncated.Load()).Message);
    }

    [Theory]
    [InlineData("missing-key", "encoder.layer.1.output.dense.weight")]
    [InlineData("missing-key", "missing")]
    [InlineData("bad-shape", "encoder.layer.0.intermediate.dense.weight is [32,64], expected [64,32]")]
    [InlineData("bad-config", "config.json")]
    public void Broken_folders_are_refused_with_a_message_naming_the_problem(string folder, string expected)
    {
        var error = Assert.Throws<BodyLoadException>(() => BertBody.Load(TestPaths.Fixture("models", "broken", folder)));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Truncated_weights_are_refused_naming_the_file()
    {
        var error = Assert.Throws<BodyLoadException>(() => BertBody.Load(TestPaths.Fixture("models", "broken", "truncated")));
        Assert.Contains("model.safetensors", error.Message);
    }

    [Fact]
    public void A_folder_without_weights_says_which_files_were_looked_for()
    {
        var error = Assert.Throws<BodyLoadException>(() => BertBody.Load(TestPaths.Fixture("models", "broken", "no-weights")));
        Assert.Contains("model.safetensors", error.Message);
        Assert.Contains("pytorch_model.bin", error.Message);
    }

    [Fact]
    public void A_missing_folder_is_named()
    {
        var error = Assert.Throws<BodyLoadException>(() => BertBody.Load("/no/such/model"));
        Assert.Contains("/no/such/model", error.Message);
        Assert.Contains("does not exist", error.Message);
    }

    [NoCudaFact]
    public void Cuda_without_a_gpu_is_a_clear_error()
    {
        var error = Assert.Throws<BodyLoadException>(() => BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { Device = "cuda" }));
        Assert.Contains("CUDA is not available", error.Message);
    }

    [Theory]
    [InlineData("float64", "dtype 'float64' is not supported")]
    [InlineData("int8", "dtype 'int8' is not supported")]
    public void Unsupported_dtypes_are_refused(string dtype, string expected)
    {
        var error = Assert.Throws<BodyLoadException>(() => BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { DType = dtype }));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void A_vocabulary_larger_than_the_embedding_table_is_refused()
    {
        var dir = Directory.CreateTempSubdirectory("berthost-vocab-");
        try
        {
            var source = ReferenceOutputs.ModelFolder("tiny-bert");
            foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(dir.FullName, Path.GetFileName(f)));
            File.AppendAllLines(Path.Combine(dir.FullName, "vocab.txt"), ["extra1", "extra2"]);
            var error = Assert.Throws<BodyLoadException>(() => BertBody.Load(dir.FullName));
            Assert.Contains("vocab_size 405", error.Message);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
