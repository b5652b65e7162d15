using BertHost.Core.Backends;

namespace BertHost.Tests.Backends;

/// <summary>The row quantizer of oneDNN's int8 path against its definition, at every length the vector loops split differently.</summary>
public unsafe class Int8RowsTests
{
    [Fact]
    public void Rows_are_quantized_to_the_grid_of_their_own_magnitude()
    {
        var random = new Random(4);
        for (var length = 1; length <= 70; length++)
        {
            var row = Enumerable.Range(0, length).Select(_ => (float)(random.NextDouble() * 2 - 1) * 3).ToArray();
            // The largest magnitude lands on ±127.49999 levels, which round to ±127: levels 1 and 255, as on fbgemm's grid.
            var peak = random.Next(length);
            row[peak] = random.Next(2) == 0 ? -4 : 4;
            var quantized = new byte[length];
            float magnitude;
            fixed (float* r = row)
            fixed (byte* q = quantized)
                magnitude = Int8Rows.Quantize(r, q, length);
            Assert.Equal(4, magnitude);
            Assert.Equal(row[peak] > 0 ? 255 : 1, quantized[peak]);
            // The definition in double precision; only a value within float rounding of a tie may land one level apart.
            for (var i = 0; i < length; i++)
            {
                var exact = (double)row[i] / magnitude * (255.0 / 2);
                var expected = Math.Clamp(Math.Round(exact, MidpointRounding.ToEven) + 128, 0, 255);
                if (Math.Abs(Math.Abs(exact - Math.Truncate(exact)) - 0.5) > 1e-4) Assert.Equal(expected, quantized[i]);
                else Assert.InRange(quantized[i] - expected, -1, 1);
            }
        }
    }

    [Theory]
    [InlineData(0f, 1f)]
    [InlineData(float.NaN, float.NaN)]
    [InlineData(float.NegativeInfinity, float.NaN)]
    public void A_zero_row_has_magnitude_one_and_a_non_finite_row_NaN(float value, float magnitude)
    {
        var row = new float[40];
        row[17] = value;
        var quantized = new byte[40];
        float got;
        fixed (float* r = row)
        fixed (byte* q = quantized)
            got = Int8Rows.Quantize(r, q, row.Length);
        Assert.Equal(magnitude, got);
        Assert.All(quantized, q => Assert.Equal(Int8Rows.ZeroPoint, q));
    }
}
