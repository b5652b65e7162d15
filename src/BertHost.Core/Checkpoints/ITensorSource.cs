using TorchSharp;

namespace BertHost.Core.Checkpoints;

/// <summary>A read-only set of named tensors in one or more checkpoint files.</summary>
public interface ITensorSource : IDisposable
{
    /// <summary>What is being read (the file path, or the index and its folder), for messages.</summary>
    string Description { get; }

    /// <summary>Every stored tensor, with names exactly as stored, in file order where the format has one.</summary>
    IReadOnlyList<TensorInfo> Tensors { get; }

    bool Contains(string name);

    /// <summary>
    /// Reads one tensor into a NEW contiguous CPU tensor with the stored dtype and shape. The caller owns (disposes) it.
    /// An unknown name, like any problem with the stored data, is a <see cref="CheckpointException"/>.
    /// </summary>
    torch.Tensor Read(string name);

    /// <summary>
    /// Copies one tensor into <paramref name="destination"/>, a tensor of its shape (converted to the destination's
    /// dtype and device). Sources that can read straight into a contiguous CPU tensor of the stored dtype do so: one
    /// copy of the weights instead of two.
    /// </summary>
    void ReadInto(string name, torch.Tensor destination)
    {
        using var tensor = Read(name);
        destination.copy_(tensor);
    }
}
