using TorchSharp.Modules;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>
/// One Linear's weight in oneDNN's layout and how to run it. <see cref="PackedLayouts.Blocked"/> is the weight as it is,
/// reordered by oneDNN; <see cref="PackedLayouts.Padded"/> first pads the weight with zeros to whole 64-column blocks in
/// both dimensions, so oneDNN's kernel sees no partial block (inputs get zero columns, outputs lose the extra ones).
/// The padded form is the fallback for shapes whose blocked form disagreed with libtorch's Linear at load: on one
/// AVX-512 machine oneDNN computed wrong products for every weight with a partial 64-column block, while another machine of the
/// same CPU family computed them right, so which layout serves is measured, never assumed.
/// </summary>
internal sealed class PackedProjection : IDisposable
{
    /// <summary>oneDNN's largest column block for float32 weights on AVX-512 (its <c>OI16i64o</c> layout).</summary>
    public const int Block = 64;

    private readonly Tensor _weight;
    private readonly Tensor _bias;
    private readonly long _inPad;
    private readonly long _outFeatures;
    private readonly bool _outPadded;

    private PackedProjection(Tensor weight, Tensor bias, long inPad, long outFeatures, bool outPadded, string layout)
    {
        (_weight, _bias, _inPad, _outFeatures, _outPadded, Layout) = (weight, bias, inPad, outFeatures, outPadded, layout);
    }

    /// <summary><see cref="PackedLayouts.Blocked"/> or <see cref="PackedLayouts.Padded"/>.</summary>
    public string Layout { get; }

    public static PackedProjection Create(Linear linear, string layout)
    {
        using var noGrad = no_grad();
        var weight = linear.weight!;
        if (layout == PackedLayouts.Blocked)
            return new PackedProjection(OneDnnLinear.Reorder(weight), linear.bias!.alias(), 0, linear.out_features, false, layout);

        long outPad = RoundUp(linear.out_features) - linear.out_features, inPad = RoundUp(linear.in_features) - linear.in_features;
        using var padded = nn.functional.pad(weight, [0, inPad, 0, outPad]);
        return new PackedProjection(OneDnnLinear.Reorder(padded), nn.functional.pad(linear.bias!, [0, outPad]), inPad,
            linear.out_features, outPad > 0, layout);
    }

    /// <summary>x [N, in] · Wᵀ + b, then the epilogue (see <see cref="OneDnnLinear.Linear"/>).</summary>
    public Tensor Run(Tensor x, string? epilogue)
    {
        if (_inPad == 0 && !_outPadded) return OneDnnLinear.Linear(x, _weight, _bias, epilogue);
        using var input = _inPad == 0 ? x.alias() : nn.functional.pad(x, [0, _inPad]);
        using var output = OneDnnLinear.Linear(input, _weight, _bias, epilogue);
        return _outPadded ? output.narrow(1, 0, _outFeatures).contiguous() : output.alias();
    }

    private static long RoundUp(long n) => (n + Block - 1) / Block * Block;

    public void Dispose()
    {
        _weight.Dispose();
        _bias.Dispose();
    }
}

/// <summary>How a projection shape is served, as reported by <c>GET /v1/body</c>.</summary>
public static class PackedLayouts
{
    /// <summary>oneDNN's own blocked layout of the weight.</summary>
    public const string Blocked = "blocked";

    /// <summary>The weight zero-padded to whole 64-column blocks, then blocked.</summary>
    public const string Padded = "padded";

    /// <summary>Not packed: libtorch's Linear (both packed forms disagreed with it).</summary>
    public const string Unpacked = "unpacked";
}
