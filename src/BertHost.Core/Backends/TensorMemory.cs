using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>Raw access to a CPU tensor's storage (float32, uint8) for the C# kernels.</summary>
internal static unsafe class TensorMemory
{
    /// <summary>
    /// The first element of <paramref name="x"/> (float32, on the CPU; a view's first element, its strides are the
    /// caller's to follow). Native storage does not move, so the pointer may be handed to other threads; the caller
    /// keeps <paramref name="x"/> alive while it is used.
    /// </summary>
    public static float* Floats(Tensor x) => (float*)THSTensor_data(x.Handle);

    /// <summary>The first byte of a CPU uint8 tensor <paramref name="x"/>, as <see cref="Floats"/>.</summary>
    public static byte* Bytes(Tensor x) => (byte*)THSTensor_data(x.Handle);

    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr tensor);
}
