using BertHost.Core.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;
using static BertHost.Tests.Checkpoints.CheckpointTestSupport;

namespace BertHost.Tests.Checkpoints;

/// <summary>The chunked path used for tensors over 1 GiB, exercised with a tiny chunk size.</summary>
public class TensorBytesTests
{
    [Theory]
    [InlineData(ScalarType.Float32, 64)]
    [InlineData(ScalarType.BFloat16, 64)]
    [InlineData(ScalarType.Float64, 24)]
    [InlineData(ScalarType.Byte, 7)]
    public void Chunked_fill_and_write_match_a_single_copy(ScalarType dtype, int chunk)
    {
        using var src = (torch.rand(5, 37) * 100).to_type(dtype);
        var expected = Bytes(src);

        using var ms = new MemoryStream();
        TensorBytes.WriteTo(src, ms, chunk);
        Assert.Equal(expected, ms.ToArray());

        using var dst = torch.empty([5, 37], dtype);
        var offsets = new List<long>();
        TensorBytes.Fill(dst, (offset, span) =>
        {
            offsets.Add(offset);
            expected.AsSpan((int)offset, span.Length).CopyTo(span);
        }, chunk);
        Assert.True(offsets.Count > 1);
        Assert.Equal(expected, Bytes(dst));
    }

    [Fact]
    public void Non_contiguous_destinations_are_refused()
    {
        using var t = torch.zeros(3, 4).t();
        Assert.Throws<ArgumentException>(() => TensorBytes.Fill(t, (_, _) => { }));
    }
}
