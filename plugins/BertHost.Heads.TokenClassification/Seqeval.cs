namespace BertHost.Heads.TokenClassification;

/// <summary>
/// Entity extraction as seqeval's <c>get_entities</c> in its default (lenient) mode, which reads IOB2 and IOB1 alike:
/// a chunk starts at B-, or at I- after O or after another type; it ends before B-, O, or another type. A tag's
/// prefix is its first character and its type what follows the first '-' ("O" has no type).
/// </summary>
public static class Seqeval
{
    /// <summary>(type, first, last) of every entity in <paramref name="tags"/> (last inclusive).</summary>
    public static List<(string Type, int Start, int End)> Entities(IReadOnlyList<string> tags)
    {
        var chunks = new List<(string, int, int)>();
        char prevTag = 'O';
        var prevType = "";
        var begin = 0;
        for (var i = 0; i <= tags.Count; i++)
        {
            var chunk = i < tags.Count ? tags[i] : "O";
            var tag = chunk.Length > 0 ? chunk[0] : 'O';
            var rest = chunk.Length > 0 ? chunk[1..] : "";
            var dash = rest.IndexOf('-');
            var type = dash < 0 ? rest : rest[(dash + 1)..];
            if (type.Length == 0) type = "_";
            if (EndOfChunk(prevTag, tag, prevType, type)) chunks.Add((prevType, begin, i - 1));
            if (StartOfChunk(prevTag, tag, prevType, type)) begin = i;
            prevTag = tag;
            prevType = type;
        }
        return chunks;
    }

    private static bool EndOfChunk(char prevTag, char tag, string prevType, string type) =>
        prevTag is 'E' or 'S'
        || (prevTag is 'B' or 'I' && tag is 'B' or 'S' or 'O')
        || (prevTag is not 'O' and not '.' && prevType != type);

    private static bool StartOfChunk(char prevTag, char tag, string prevType, string type) =>
        tag is 'B' or 'S'
        || (prevTag is 'E' or 'S' or 'O' && tag is 'E' or 'I')
        || (tag is not 'O' and not '.' && prevType != type);

    /// <summary>IOB1 -> IOB2: an I-X that starts an entity (after O, or after another type) becomes B-X.</summary>
    public static string[] ToIob2(IReadOnlyList<string> tags)
    {
        var result = tags.ToArray();
        for (var i = 0; i < result.Length; i++)
        {
            if (!result[i].StartsWith("I-", StringComparison.Ordinal)) continue;
            var type = result[i][2..];
            var prev = i == 0 ? "O" : tags[i - 1];
            if (prev == "O" || TypeOf(prev) != type) result[i] = "B-" + type;
        }
        return result;
    }

    /// <summary>IOB2 -> IOB1: a B-X not right after an X entity becomes I-X.</summary>
    public static string[] ToIob1(IReadOnlyList<string> tags)
    {
        var result = tags.ToArray();
        for (var i = 0; i < result.Length; i++)
        {
            if (!result[i].StartsWith("B-", StringComparison.Ordinal)) continue;
            var type = result[i][2..];
            var prev = i == 0 ? "O" : tags[i - 1];
            if (prev == "O" || !(prev.StartsWith("B-", StringComparison.Ordinal) || prev.StartsWith("I-", StringComparison.Ordinal)) || TypeOf(prev) != type)
                result[i] = "I-" + type;
        }
        return result;
    }

    private static string? TypeOf(string tag) =>
        tag.StartsWith("B-", StringComparison.Ordinal) || tag.StartsWith("I-", StringComparison.Ordinal) ? tag[2..] : null;
}
