using System.Text.Json;
using System.Text.Json.Nodes;
using BertHost.Core.Serving;

namespace BertHost.Tests.Api;

/// <summary>
/// An <see cref="IInferenceEngine"/> with controllable behaviour: echoes each input (with its head and index), or waits,
/// or throws what it is told to.
/// </summary>
internal sealed class FakeEngine : IInferenceEngine
{
    public volatile bool Ready = true;

    public List<HeadStatus> HeadList { get; } =
    [
        new()
        {
            Name = "sentiment", Kind = "sequence_classification", State = "ready", Labels = ["negative", "positive"],
            Plugin = "/plugins/Cls/Cls.dll", PluginSha256 = "ab12", Details = new JsonObject { ["pooling"] = "cls" },
        },
        new() { Name = "ner", Kind = "token_classification", State = "ready", Labels = ["O", "B-PER", "I-PER"] },
        new() { Name = "broken", Kind = "sequence_classification", State = "failed", Error = "plugin not found" },
    ];

    /// <summary>Thrown by every predict call when set.</summary>
    public Exception? Throw { get; set; }

    /// <summary>Wait before answering (honours cancellation).</summary>
    public TimeSpan Delay { get; set; }

    /// <summary>Replaces the outputs when set (e.g. to return the wrong number).</summary>
    public Func<IReadOnlyList<JsonElement>, IReadOnlyList<JsonNode>>? Outputs { get; set; }

    /// <summary>
    /// When set, each call waits until this many calls have been in the engine at the same time (then the gate stays
    /// open): a server that runs requests one after another never gets there.
    /// </summary>
    public int? OpenWhenConcurrent { get; set; }

    private readonly TaskCompletionSource _concurrent = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inEngine;
    private int _calls;
    public int Calls => Volatile.Read(ref _calls);
    public JsonElement LastParameters { get; private set; }
    public IReadOnlyList<string>? LastHeads { get; private set; }

    public bool IsReady => Ready;
    public IReadOnlyList<HeadStatus> Heads => HeadList;
    public HeadStatus? FindHead(string name, bool withDetails = false) => HeadList.FirstOrDefault(h => h.Name == name);

    /// <summary>One token per whitespace-separated word (id = its length), between [CLS] (101) and [SEP] (102).</summary>
    public IReadOnlyList<BertHost.Abstractions.Text.EncodedSequence> Tokenize(IReadOnlyList<string> texts, bool addSpecialTokens) =>
        texts.Select(text =>
        {
            var words = new List<(string Token, int Id, int Start, int End, bool Special)>();
            if (addSpecialTokens) words.Add(("[CLS]", 101, 0, 0, true));
            var at = 0;
            foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                var start = text.IndexOf(word, at, StringComparison.Ordinal);
                words.Add((word, word.Length, start, start + word.Length, false));
                at = start + word.Length;
            }
            if (addSpecialTokens) words.Add(("[SEP]", 102, 0, 0, true));
            return new BertHost.Abstractions.Text.EncodedSequence
            {
                InputIds = words.Select(w => w.Id).ToArray(),
                Tokens = words.Select(w => w.Token).ToArray(),
                TokenTypeIds = new int[words.Count],
                Offsets = words.Select(w => (w.Start, w.End)).ToArray(),
                WordIds = words.Select((w, i) => w.Special ? (int?)null : i).ToArray(),
                SequenceIds = words.Select(w => w.Special ? (int?)null : 0).ToArray(),
                SpecialTokensMask = words.Select(w => w.Special).ToArray(),
            };
        }).ToList();

    public JsonObject DescribeBody() => new() { ["model"] = "/models/tiny-bert", ["hidden_size"] = 32, ["device"] = "cpu" };

    public async Task<IReadOnlyList<JsonNode>> PredictAsync(string head, IReadOnlyList<JsonElement> inputs, JsonElement parameters, CancellationToken cancellationToken)
    {
        await BeforeAsync([head], parameters, cancellationToken);
        if (Outputs is not null) return Outputs(inputs);
        return inputs.Select((input, i) => (JsonNode)Echo(head, i, input)).ToList();
    }

    public async Task<IReadOnlyList<JsonObject>> PredictManyAsync(IReadOnlyList<string> heads, IReadOnlyList<JsonElement> inputs, JsonElement parameters, CancellationToken cancellationToken)
    {
        await BeforeAsync(heads, parameters, cancellationToken);
        return inputs.Select((input, i) =>
        {
            var row = new JsonObject();
            foreach (var head in heads) row[head] = Echo(head, i, input);
            return row;
        }).ToList();
    }

    private async Task BeforeAsync(IReadOnlyList<string> heads, JsonElement parameters, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        LastHeads = heads;
        LastParameters = parameters.Clone();
        if (OpenWhenConcurrent is { } gate)
        {
            try
            {
                if (Interlocked.Increment(ref _inEngine) >= gate) _concurrent.TrySetResult();
                await _concurrent.Task.WaitAsync(cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _inEngine);
            }
        }
        if (Delay > TimeSpan.Zero) await Task.Delay(Delay, cancellationToken);
        else await Task.Yield();
        if (Throw is not null) throw Throw;
    }

    private static JsonObject Echo(string head, int index, JsonElement input) =>
        new() { ["head"] = head, ["index"] = index, ["input"] = JsonNode.Parse(input.GetRawText()) };
}
