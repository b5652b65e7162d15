using System.Text.Json;
using BertHost.Core.Bert;
using BertHost.Tests.Support;
using static TorchSharp.torch;
using BertHost.Core.Body;

namespace BertHost.Tests.Bert;

/// <summary>
/// The serving pass that skips padded tokens (<see cref="BertModel.ForwardSkippingPadding"/>) against the independent
/// reference: real tokens match it, padded positions are zero, the pooler output is unchanged.
/// </summary>
public class SkippingPaddingTests
{
    private const double Tolerance = 1e-4;
    private readonly ReferenceOutputs _reference = ReferenceOutputs.Load();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Real_tokens_match_the_reference_and_padding_is_zero(bool outputHiddenStates)
    {
        var c = _reference.Case("padded_batch");
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder(c.GetProperty("model").GetString()!));
        using var scope = NewDisposeScope();
        var (ids, types, mask) = Inputs(c);
        using var full = body.Forward(ids, types, mask, outputHiddenStates);
        using var noGrad = no_grad();
        using var packed = body.Model.ForwardSkippingPadding(ids, types, mask, outputHiddenStates);
        Assert.True(mask.min().item<long>() == 0, "the case must contain padding");

        var expected = ReferenceOutputs.ToTensor(c.GetProperty("last_hidden_state"));
        var keep = mask.unsqueeze(-1).to(ScalarType.Float32);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(packed.LastHiddenState, expected.mul(keep)), 0, Tolerance);
        Assert.Equal(0f, packed.LastHiddenState.mul(keep.neg().add(1)).abs().max().item<float>());
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(packed.PooledOutput, ReferenceOutputs.ToTensor(c.GetProperty("pooler_output"))), 0, Tolerance);
        if (outputHiddenStates)
        {
            Assert.Equal(full.HiddenStates!.Count, packed.HiddenStates!.Count);
            for (var i = 0; i < full.HiddenStates.Count; i++)
                Assert.InRange(ReferenceOutputs.MaxAbsDiff(packed.HiddenStates[i].mul(keep), full.HiddenStates[i].mul(keep)), 0, 1e-5);
        }
    }

    [Fact]
    public void A_batch_without_padding_takes_the_ordinary_pass()
    {
        var c = _reference.Case("single");
        using var body = BertBody.Load(ReferenceOutputs.ModelFolder(c.GetProperty("model").GetString()!));
        using var scope = NewDisposeScope();
        var (ids, types, mask) = Inputs(c);
        using var noGrad = no_grad();
        using var packed = body.Model.ForwardSkippingPadding(ids, types, mask, outputHiddenStates: false);
        Assert.InRange(ReferenceOutputs.MaxAbsDiff(packed.LastHiddenState, ReferenceOutputs.ToTensor(c.GetProperty("last_hidden_state"))), 0, Tolerance);
    }

    private static (Tensor, Tensor, Tensor) Inputs(JsonElement c) => (
        ReferenceOutputs.ToTensor(c.GetProperty("input_ids"), ScalarType.Int64),
        ReferenceOutputs.ToTensor(c.GetProperty("token_type_ids"), ScalarType.Int64),
        ReferenceOutputs.ToTensor(c.GetProperty("attention_mask"), ScalarType.Int64));
}
