using static TorchSharp.torch;

namespace BertHost.Abstractions.Heads;

/// <summary>
/// The inputs of one head inside a body pass. The <see cref="BodyOutput"/> handed to the head has exactly
/// <see cref="RowCount"/> rows: the sequences of <see cref="Items"/>, concatenated in order.
/// </summary>
public sealed class HeadBatch
{
    public HeadBatch(IReadOnlyList<HeadFeatures> items, Device device)
    {
        Items = items;
        Device = device;
        var starts = new int[items.Count];
        var row = 0;
        for (var i = 0; i < items.Count; i++)
        {
            starts[i] = row;
            row += items[i].Sequences.Count;
        }
        RowStarts = starts;
        RowCount = row;
    }

    public IReadOnlyList<HeadFeatures> Items { get; }

    /// <summary>Item i owns rows [RowStarts[i], RowStarts[i] + Items[i].Sequences.Count).</summary>
    public IReadOnlyList<int> RowStarts { get; }

    public int RowCount { get; }

    /// <summary>Where the body output lives; heads create label tensors there.</summary>
    public Device Device { get; }

    public int RowCountOf(int item) => Items[item].Sequences.Count;
}
