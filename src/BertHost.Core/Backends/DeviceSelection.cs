using TorchSharp;
using static TorchSharp.torch;

namespace BertHost.Core.Backends;

/// <summary>Turns the <c>device</c> and <c>dtype</c> settings into TorchSharp values, with clear errors.</summary>
public static class DeviceSelection
{
    public static IReadOnlyList<string> SupportedDTypes { get; } = ["float32", "bfloat16", "float16"];

    public static ScalarType ParseDType(string dtype) => dtype.ToLowerInvariant() switch
    {
        "float32" or "fp32" or "f32" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "float16" or "fp16" or "f16" or "half" => ScalarType.Float16,
        _ => throw new ArgumentException($"dtype '{dtype}' is not supported (use one of: {string.Join(", ", SupportedDTypes)})"),
    };

    public static Device ResolveDevice(string device)
    {
        var spec = device.Trim().ToLowerInvariant();
        if (spec == "auto") return cuda.is_available() ? CUDA : CPU;
        if (spec == "cpu") return CPU;
        if (spec == "cuda" || spec.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new ArgumentException(
                    $"device '{device}' was requested but CUDA is not available here (no NVIDIA GPU found, or this build uses " +
                    "the CPU libtorch: build with -p:TorchBackend=cuda, or -p:TorchBackend=external with a CUDA libtorch on LD_LIBRARY_PATH); use device 'cpu' or 'auto'");
            if (spec == "cuda") return CUDA;
            if (!int.TryParse(spec["cuda:".Length..], out var index) || index < 0)
                throw new ArgumentException($"device '{device}' is not valid (use cuda or cuda:N)");
            var count = cuda.device_count();
            if (index >= count) throw new ArgumentException($"device '{device}' does not exist: {count} CUDA device(s) found");
            return new Device(DeviceType.CUDA, index);
        }
        throw new ArgumentException($"device '{device}' is not valid (use auto, cpu, cuda or cuda:N)");
    }
}
