using System.Reflection;
using System.Text.Json;
using BertHost.Abstractions.Heads;
using BertHost.Abstractions.Text;
using BertHost.Core.Bert;
using BertHost.Core.Plugins;
using BertHost.Tests.Support;
using static BertHost.Tests.Plugins.HeadTestSupport;
using static TorchSharp.torch;
using BertHost.Core.Body;

namespace BertHost.Tests.Heads.QuestionAnswering;

/// <summary>The question-answering plugin as the tests load it (through <see cref="PluginCatalog"/>), and helpers.</summary>
public static class QaTestSupport
{
    public const string KindName = "question-answering";

    public static string Plugin { get; } = Path.Combine(TestPaths.RepoRoot, "plugins", "BertHost.Heads.QuestionAnswering");

    public static LoadedKind QaKind => Kind(Plugin, KindName);

    public static string QaFolder { get; } = ReferenceOutputs.ModelFolder("tiny-bert-qa");

    private static readonly Lazy<BertBody> QaBodyValue = new(() => BertBody.Load(QaFolder, new BodyOptions { Device = "cpu" }));

    /// <summary>
    /// The body of tiny-bert-qa (tiny-bert's encoder, no pooler, as HF's BertForQuestionAnswering stores it): the body an
    /// imported tiny-bert-qa head is served on.
    /// </summary>
    public static BertBody QaBody => QaBodyValue.Value;

    public static IHead Fresh(string? options = null, BertBody? body = null, long seed = 42) =>
        QaKind.CreateHead(Context(body ?? TinyBert, kind: KindName, options: options, seed: seed));

    public static IHead Imported() => QaKind.CreateHead(Context(QaBody, kind: KindName, weights: QaFolder));

    public static string Input(string question, string context) =>
        JsonSerializer.Serialize(new Dictionary<string, string> { ["question"] = question, ["context"] = context });

    public static HeadFeatures Encode(IHead head, string question, string context, string parameters = "{}") =>
        head.Encode(Json(Input(question, context)), Json(parameters));

    /// <summary>Logits [rows, T, 2] that are <paramref name="fill"/> everywhere except where <paramref name="set"/> writes.</summary>
    public static Tensor Logits(HeadBatch batch, Action<float[,,]> set, float fill = 0f)
    {
        var T = batch.Items.SelectMany(i => i.Sequences).Max(s => s.Length);
        var values = new float[batch.RowCount, T, 2];
        for (var r = 0; r < batch.RowCount; r++)
            for (var t = 0; t < T; t++) values[r, t, 0] = values[r, t, 1] = fill;
        set(values);
        return tensor(values);
    }

    /// <summary>Index of the token covering context character <paramref name="charIndex"/> in a window (sequence 1).</summary>
    public static int Token(EncodedSequence window, int charIndex) =>
        window.CharToToken(charIndex, 1) ?? throw new ArgumentException($"char {charIndex} is not in window {window.WindowIndex}");

    /// <summary>A public static method of the plugin (pure functions such as SQuAD scoring), called by reflection.</summary>
    public static object? Call(string type, string method, params object[] args)
    {
        var assembly = QaKind.Kind.GetType().Assembly;
        var t = assembly.GetType($"BertHost.Heads.QuestionAnswering.{type}", throwOnError: true)!;
        var m = t.GetMethods(BindingFlags.Public | BindingFlags.Static).Single(m => m.Name == method && m.GetParameters().Length == args.Length);
        try
        {
            return m.Invoke(null, args);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
    }
}
