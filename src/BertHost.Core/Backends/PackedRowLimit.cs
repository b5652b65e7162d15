using System.Diagnostics;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// Chooses, on the machine the body runs on, up to how many rows a projection should use oneDNN on the prepacked
/// weight rather than libtorch's Linear (MKL). Which one wins depends on the processor, not on the model: on a 2-core
/// AMD EPYC with AVX2 oneDNN was 1.1-1.4x MKL at 17-128 rows and level or slower from ~1,000 rows (MKL's repacking is
/// amortised there); on an AMD EPYC with AVX-512 oneDNN was 2.2-2.5x MKL from 128 to 4,096 rows (MKL takes its AVX2
/// path on AMD processors). So a body measures both kernels once when it is packed, on its largest weight.
/// </summary>
internal static class PackedRowLimit
{
    /// <summary>Passes this small always use the packed weight: oneDNN won there on every processor measured.</summary>
    public const long AlwaysPacked = 256;

    /// <summary>Largest row count measured; a win there extends to every pass.</summary>
    public const long LargestMeasured = 4096;

    /// <summary>oneDNN keeps a row count while it is at most this much slower (its fused GELU saves another pass).</summary>
    private const double Tolerance = 1.05;

    /// <summary>Measurement stops (keeping what it has) once it has taken this long, e.g. on a very large model.</summary>
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(4);

    /// <returns>The row limit and a sentence saying how it was chosen.</returns>
    public static (long MaxRows, string Reason) Measure(Linear linear, PackedProjection packed)
    {
        using var noGrad = no_grad();
        // libtorch sends float32 products to MKL and bfloat16 ones to oneDNN, reordering the weight on every call.
        var plain = linear.weight!.dtype == ScalarType.Float32 ? "MKL" : $"unpacked {linear.weight.dtype.ToString().ToLowerInvariant()}";
        return Choose(rows => TimeBoth(linear, packed, rows), $"{linear.in_features}→{linear.out_features}", plain);
    }

    /// <param name="time">Milliseconds of libtorch's Linear and of oneDNN on the packed weight for a row count.</param>
    /// <param name="shape">The weight's shape, for the reason.</param>
    /// <param name="plain">What libtorch's Linear runs (MKL for float32), for the reason.</param>
    internal static (long MaxRows, string Reason) Choose(Func<long, (double Plain, double OneDnn)> time, string shape, string plain = "MKL")
    {
        var clock = Stopwatch.StartNew();
        var limit = AlwaysPacked;
        var last = "";
        for (var rows = AlwaysPacked * 2; rows <= LargestMeasured; rows *= 2)
        {
            if (clock.Elapsed > Budget) return (limit, $"{last}; measurement stopped after {clock.Elapsed.TotalSeconds:F1} s");
            var (unpacked, oneDnn) = time(rows);
            if (oneDnn > unpacked * Tolerance)
            {
                // A loss ends the search, so confirm it: a burst of other work on a small machine can fake one.
                var (unpackedAgain, oneDnnAgain) = time(rows);
                (unpacked, oneDnn) = (Math.Min(unpacked, unpackedAgain), Math.Min(oneDnn, oneDnnAgain));
            }
            last = $"{rows} rows of {shape}: oneDNN {oneDnn:F2} ms, {plain} {unpacked:F2} ms";
            if (oneDnn > unpacked * Tolerance) return (limit, last);
            limit = rows;
        }
        return (long.MaxValue, last);
    }

    /// <summary>Best of five alternating timings of each kernel, in milliseconds, after two warm-up calls each.</summary>
    private static (double Plain, double OneDnn) TimeBoth(Linear linear, PackedProjection packed, long rows)
    {
        using var x = randn(rows, linear.in_features, linear.weight!.dtype);
        var unpacked = double.MaxValue;
        var oneDnn = double.MaxValue;
        for (var round = 0; round < 7; round++)
        {
            var m = Time(() => linear.call(x));
            var o = Time(() => packed.Run(x, null));
            if (round < 2) continue;
            unpacked = Math.Min(unpacked, m);
            oneDnn = Math.Min(oneDnn, o);
        }
        return (unpacked, oneDnn);
    }

    private static double Time(Func<Tensor> kernel)
    {
        var start = Stopwatch.GetTimestamp();
        kernel().Dispose();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
}
