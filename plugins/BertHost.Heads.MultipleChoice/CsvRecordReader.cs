using System.Text;

namespace BertHost.Heads.MultipleChoice;

/// <summary>
/// RFC 4180 CSV records: comma-separated fields; a field that starts with <c>"</c> is quoted and may hold commas, line
/// breaks and doubled quotes (<c>""</c> = one <c>"</c>); a quote inside an unquoted field is kept as written. Lines end
/// with <c>\n</c>, <c>\r\n</c> or <c>\r</c>.
/// </summary>
internal sealed class CsvRecordReader(TextReader reader)
{
    private int _line = 1;

    /// <summary>One record: its fields, the line it starts on, and what is wrong with it (null when well-formed).</summary>
    public readonly record struct Record(List<string> Fields, int Line, string? Error, bool Blank);

    /// <summary>The next record, or null at the end of the input.</summary>
    public Record? Next()
    {
        if (reader.Peek() < 0) return null;
        var startLine = _line;
        var fields = new List<string>();
        var field = new StringBuilder();
        string? error = null;
        var quoted = false;        // inside a quoted field
        var wasQuoted = false;     // the current field was quoted and its closing quote was seen
        var rawLength = 0;
        while (true)
        {
            var c = reader.Read();
            if (c < 0)
            {
                if (quoted) error ??= $"a quoted field opened on line {startLine} is never closed";
                break;
            }
            rawLength++;
            var ch = (char)c;
            if (quoted)
            {
                if (ch == '"')
                {
                    if (reader.Peek() == '"') { reader.Read(); field.Append('"'); }
                    else { quoted = false; wasQuoted = true; }
                }
                else
                {
                    if (ch == '\n' || (ch == '\r' && reader.Peek() != '\n')) _line++;
                    field.Append(ch);
                }
                continue;
            }
            if (ch == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
                wasQuoted = false;
                continue;
            }
            if (ch == '\r' || ch == '\n')
            {
                if (ch == '\r' && reader.Peek() == '\n') reader.Read();
                _line++;
                rawLength--;
                break;
            }
            if (ch == '"' && field.Length == 0 && !wasQuoted)
            {
                quoted = true;
                continue;
            }
            if (wasQuoted)
                error ??= $"unexpected '{ch}' after the closing quote of column {fields.Count + 1} (a quote inside a quoted field is written \"\")";
            field.Append(ch);
        }
        fields.Add(field.ToString());
        return new Record(fields, startLine, error, Blank: rawLength == 0);
    }
}
