using BertHost.Abstractions;
using static TorchSharp.torch;

namespace BertHost.Core.Serving;

/// <summary>Picks rows of a body pass for one head, so each head sees a <see cref="BodyOutput"/> with exactly its rows.</summary>
internal static class BodyOutputRows
{
    public static BodyOutput Select(BodyOutput output, IReadOnlyList<int> rows)
    {
        using var index = tensor(rows.Select(r => (long)r).ToArray(), ScalarType.Int64, output.LastHiddenState.device);
        var hidden = output.HiddenStates?.Select(h => ReferenceEquals(h, output.LastHiddenState) ? null : h.index_select(0, index)).ToList();
        var last = output.LastHiddenState.index_select(0, index);
        if (hidden is not null) hidden[^1] = last;
        return new BodyOutput(
            last,
            output.HasPooledOutput ? output.PooledOutput.index_select(0, index) : null,
            output.AttentionMask.index_select(0, index),
            hidden!);
    }
}
