using BertHost.Abstractions;
using System.Text.Json;
using BertHost.Core.Bert;
using BertHost.Tests.Support;
using static TorchSharp.torch;
using BertHost.Core.Body;

namespace BertHost.Tests.Bert;

/// <summary>
/// Numerical parity with an independent reference (tests/reference/bert_reference.py, plain PyTorch following
/// transformers' modeling_bert.py) on the same tiny random checkpoints: max |diff| ≤ 1e-4 in float32.
/// </summary>
public class BertParityTests
{
    private const double Tolerance = 1e-4;
    private readonly ReferenceOutputs _reference = ReferenceOutputs.Load();

    [Theory]
    [InlineData("single")]
    [InlineData("pair")]
    [InlineData("padded_batch")]
    public void Hidden_states_and_pooled_output_match_the_reference(string caseName)
    {
        var c = _reference.Case(caseName);
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder(c.GetProperty("model").GetString()!));
        using var output = Run(body, c, outputHiddenStates: caseName == "single");

        using var expectedLast = ReferenceOutputs.ToTensor(c.GetProperty("last_hidden_state"));
        using var expectedPooled = ReferenceOutputs.ToTensor(c.GetProperty("pooler_output"));
        using var mask = ReferenceOutputs.ToTensor(c.GetProperty("attention_mask")).unsqueeze(-1);
        // Padding positions are compared too: the reference computes them the same way.
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(output.LastHiddenState, expectedLast), 0, Tolerance);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(output.PooledOutput, expectedPooled), 0, Tolerance);

        if (caseName == "single")
        {
            var states = c.GetProperty("hidden_states");
            Assert.Equal(states.GetArrayLength(), output.HiddenStates!.Count);
            for (var i = 0; i < states.GetArrayLength(); i++)
            {
                using var expected = ReferenceOutputs.ToTensor(states[i]);
                Assert.InRange(ReferenceOutputs.MaxAbsDiff(output.HiddenStates[i], expected), 0, Tolerance);
            }
        }
    }

    [Fact]
    public void Padding_does_not_change_the_outputs_of_real_tokens()
    {
        var c = _reference.Case("padded_batch");
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        using var padded = Run(body, c, outputHiddenStates: false);
        var lengths = c.GetProperty("lengths").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var unpadded = c.GetProperty("unpadded");
        for (var b = 0; b < lengths.Length; b++)
        {
            using var alone = Run(body, unpadded[b], outputHiddenStates: false);
            using var realTokens = padded.LastHiddenState[b].narrow(0, 0, lengths[b]);
            Assert.InRange(ReferenceOutputs.MaxAbsDiff(realTokens, alone.LastHiddenState[0]), 0, 1e-5);
            using var expectedAlone = ReferenceOutputs.ToTensor(unpadded[b].GetProperty("last_hidden_state"));
            Assert.InRange(ReferenceOutputs.MaxAbsDiff(alone.LastHiddenState, expectedAlone), 0, Tolerance);
        }
    }

    [Fact]
    public void Mean_pooling_ignores_padding_like_the_reference()
    {
        var c = _reference.Case("padded_batch");
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"));
        using var output = Run(body, c, outputHiddenStates: false);
        using var mean = Pooling.Pool(output, PoolingMode.Mean);
        using var expected = ReferenceOutputs.ToTensor(c.GetProperty("mean_pooled"));
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(mean, expected), 0, Tolerance);
    }

    [Theory]
    [InlineData("single_f16")]
    [InlineData("single_bf16")]
    public void Half_precision_checkpoints_are_upcast_exactly(string caseName)
    {
        var c = _reference.Case(caseName);
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder(c.GetProperty("model").GetString()!));
        Assert.Equal(ScalarType.Float32, body.DType);
        using var output = Run(body, c, outputHiddenStates: false);
        using var expected = ReferenceOutputs.ToTensor(c.GetProperty("last_hidden_state"));
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(output.LastHiddenState, expected), 0, Tolerance);
    }

    [Theory]
    [InlineData("bfloat16", ScalarType.BFloat16, 0.15)]
    [InlineData("float16", ScalarType.Float16, 0.02)]
    public void Reduced_precision_bodies_stay_close_to_float32(string dtype, ScalarType expectedType, double tolerance)
    {
        var c = _reference.Case("single");
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder("tiny-bert"), new BodyOptions { DType = dtype });
        Assert.Equal(expectedType, body.DType);
        using var output = Run(body, c, outputHiddenStates: false);
        Assert.Equal(expectedType, output.LastHiddenState.dtype);
        using var expected = ReferenceOutputs.ToTensor(c.GetProperty("last_hidden_state"));
        // LayerNorm outputs are O(1); these bounds are the precision of the format, not a loose parity claim.
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(output.LastHiddenState, expected), 0, tolerance);
    }

    private static Abstractions.BodyOutput Run(BertBody body, JsonElement c, bool outputHiddenStates)
    {
        using var ids = ReferenceOutputs.ToTensor(c.GetProperty("input_ids"), ScalarType.Int64);
        using var types = ReferenceOutputs.ToTensor(c.GetProperty("token_type_ids"), ScalarType.Int64);
        using var mask = ReferenceOutputs.ToTensor(c.GetProperty("attention_mask"), ScalarType.Int64);
        return body.Forward(ids, types, mask, outputHiddenStates);
    }
}
