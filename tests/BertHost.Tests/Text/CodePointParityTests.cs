using System.Text;
using System.Text.Json;
using BertHost.Core.Text;
using BertHost.Tests.Support;
using Xunit.Abstractions;

namespace BertHost.Tests.Text;

/// <summary>
/// Every Unicode code point against HF's BertNormalizer + BertPreTokenizer (fixture chars.json, produced by
/// tests/reference/tokenizer/chars.mjs): clean-text removal, whitespace, punctuation, CJK, accent stripping, lower case.
/// </summary>
public sealed class CodePointParityTests(ITestOutputHelper output)
{
    private const string Model = "models/bert-base-uncased";

    [SharedDataFact(Model)]
    public void Every_code_point_normalizes_and_splits_like_hf()
    {
        var tok = BertTextTokenizer.FromFolder(TestPaths.SharedPath(Model));
        var root = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("tokenizer", "chars.json"))).RootElement;
        var mapped = root.GetProperty("mapped").EnumerateObject().ToDictionary(p => int.Parse(p.Name), p => p.Value.GetString()!);
        var mismatches = new List<string>();
        var checkedCount = 0;
        // BERTHOST_CP_DUMP=file writes every difference (code point, .NET category, HF, ours) for table generation
        var dumpPath = Environment.GetEnvironmentVariable("BERTHOST_CP_DUMP");
        var dump = string.IsNullOrEmpty(dumpPath) ? null : new List<string>();
        foreach (var r in root.GetProperty("ranges").EnumerateArray())
        {
            int first = r[0].GetInt32(), last = r[1].GetInt32();
            var kind = r[2].GetString()!;
            for (var cp = first; cp <= last; cp++)
            {
                if (cp is >= 0xD800 and <= 0xDFFF) continue;
                var c = char.ConvertFromUtf32(cp);
                var expected = kind switch
                {
                    "I" => "a" + c + "a",
                    "P" => "a|" + c + "|a",
                    "X" => "aa",
                    "W" => "a|a",
                    _ => mapped[cp],
                };
                var actual = string.Join('|', tok.PreTokenize("a" + c + "a").Select(w => w.Word));
                checkedCount++;
                if (actual != expected)
                {
                    mismatches.Add($"U+{cp:X4} expected '{Esc(expected)}' actual '{Esc(actual)}'");
                    dump?.Add($"{cp}\t{Rune.GetUnicodeCategory(new Rune(cp))}\t{Esc(expected)}\t{Esc(actual)}");
                }
            }
        }
        if (dump is not null) File.WriteAllLines(dumpPath!, dump);
        output.WriteLine($"checked {checkedCount} code points, {mismatches.Count} differ from HF");
        foreach (var m in mismatches.Take(200)) output.WriteLine(m);
        Assert.True(checkedCount > 1_100_000);
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} code points differ from HF, e.g.\n" + string.Join('\n', mismatches.Take(40)));
    }

    private static string Esc(string s)
    {
        var sb = new StringBuilder();
        foreach (var r in s.EnumerateRunes())
            sb.Append(r.Value is >= 0x20 and < 0x7F ? r.ToString() : $"\\u{{{r.Value:X}}}");
        return sb.ToString();
    }
}
