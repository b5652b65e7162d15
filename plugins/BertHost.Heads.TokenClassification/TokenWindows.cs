using BertHost.Abstractions.Text;

namespace BertHost.Heads.TokenClassification;

/// <summary>
/// How the windows of one input (the tokenizer's overflowing windows: HF <c>return_overflowing_tokens</c> with a
/// stride, window i starting at content token i * (window - stride)) cover its content tokens, and which window
/// each token is read from: the one where it has the most context on both sides (its distance to the nearest cut
/// window edge is largest; a window edge at the start or end of the text is no cut; ties go to the earlier window).
/// So every token of the text is predicted exactly once.
/// </summary>
public sealed class TokenWindows
{
    private TokenWindows(int[] starts, int[][] positions, (int Window, int Position)[] owners)
    {
        Starts = starts;
        Positions = positions;
        Owners = owners;
    }

    /// <summary>Index (among the input's content tokens) of each window's first content token.</summary>
    public int[] Starts { get; }

    /// <summary>Per window: the positions of its content (non-special) tokens, in order.</summary>
    public int[][] Positions { get; }

    /// <summary>Per content token of the input: the window it is read from and its position in that window.</summary>
    public (int Window, int Position)[] Owners { get; }

    public int Count => Owners.Length;

    /// <summary>(token, window) pairs looked at to choose the owners: a measure of the work, linear in the tokens.</summary>
    public long Visits { get; private init; }

    /// <param name="windows">The windows of one input, in the tokenizer's order.</param>
    /// <param name="step">Content tokens between the starts of consecutive windows (window content length - stride).</param>
    internal static TokenWindows Of(IReadOnlyList<EncodedSequence> windows, int step)
    {
        var positions = windows.Select(w => Enumerable.Range(0, w.Length).Where(p => w.SequenceIds[p] == 0).ToArray()).ToArray();
        var starts = new int[windows.Count];
        for (var i = 1; i < windows.Count; i++)
        {
            starts[i] = starts[i - 1] + step;
            // The overlap must be the same tokens in both windows, else the windows are not the ones assumed here.
            var prevEnd = starts[i - 1] + positions[i - 1].Length;
            for (var g = starts[i]; g < Math.Min(prevEnd, starts[i] + positions[i].Length); g++)
            {
                var a = windows[i - 1];
                var b = windows[i];
                var pa = positions[i - 1][g - starts[i - 1]];
                var pb = positions[i][g - starts[i]];
                if (a.InputIds[pa] != b.InputIds[pb] || a.Offsets[pa] != b.Offsets[pb] || a.WordIds[pa] != b.WordIds[pb])
                    throw new InvalidOperationException($"window {i} does not start {step} tokens after window {i - 1}: the tokenizer's windows are not laid out as expected");
            }
            if (prevEnd < starts[i])
                throw new InvalidOperationException($"window {i} leaves a gap after window {i - 1}");
        }
        var total = windows.Count == 0 ? 0 : starts[^1] + positions[^1].Length;
        var owners = new (int, int)[total];
        long visits = 0;
        // Window starts and ends both grow with the window index, so the windows holding token g are a run
        // first..last that only moves forward as g does: each token looks at the few windows that overlap it
        // (about window / (window - stride)), not at every window of the text, and the whole pass is linear.
        var first = 0;
        for (var g = 0; g < total; g++)
        {
            while (starts[first] + positions[first].Length <= g) first++;
            var best = -1;
            var bestContext = -1;
            for (var w = first; w < windows.Count && starts[w] <= g; w++)
            {
                visits++;
                var end = starts[w] + positions[w].Length;
                if (g >= end) continue;
                var left = starts[w] == 0 ? int.MaxValue : g - starts[w];
                var right = end == total ? int.MaxValue : end - 1 - g;
                var context = Math.Min(left, right);
                if (context > bestContext)
                {
                    best = w;
                    bestContext = context;
                }
            }
            owners[g] = (best, positions[best][g - starts[best]]);
        }
        return new TokenWindows(starts, positions, owners) { Visits = visits };
    }
}
