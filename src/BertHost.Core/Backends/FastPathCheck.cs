using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// Compares a fast kernel's output with the plain path's on the same random input. Differences are taken relative to
/// the largest magnitude of the plain output, so one bound fits every shape: a kernel that merely rounds differently
/// stays orders of magnitude below it, while the wrong products that motivated these checks were off by about half the
/// output's magnitude.
/// </summary>
internal static class FastPathCheck
{
    /// <summary>Largest relative difference accepted in float32 (accumulation order differs between kernels).</summary>
    public const double Float32Tolerance = 1e-4;

    /// <summary>bfloat16 keeps 8 significant bits; kernels round at different points.</summary>
    public const double BFloat16Tolerance = 5e-2;

    public static double Tolerance(ScalarType dtype) => dtype == ScalarType.Float32 ? Float32Tolerance : BFloat16Tolerance;

    /// <summary>max |fast − plain| / max(1, max |plain|), in float32.</summary>
    public static double RelativeDifference(Tensor fast, Tensor plain)
    {
        using var scope = NewDisposeScope();
        var expected = plain.to(ScalarType.Float32);
        var scale = Math.Max(1.0, expected.abs().max().item<float>());
        var difference = fast.to(ScalarType.Float32).sub(expected).abs().max().item<float>();
        return float.IsFinite(difference) ? difference / scale : double.PositiveInfinity;
    }
}
