using System.Text;

namespace Quant.Core.Reports;

/// <summary>
/// The one way artifacts hold a table (model_check.txt, the change log, the check summary). Plain strings in, the
/// same bytes out whatever terminal or culture runs the export: console tables are drawn elsewhere (quant-check's
/// Spectre renderer), never into a file, because their layout follows the terminal's width.
/// </summary>
public static class TextTable
{
    /// <summary>
    /// Columns padded to their widest cell (header included), two spaces apart; the last column is not padded,
    /// so no line ends in blanks. Every row has the header's column count.
    /// </summary>
    public static void Aligned(StringBuilder sb, IReadOnlyList<string> head, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        var widths = head.Select((h, i) => rows.Aggregate(h.Length, (w, r) => Math.Max(w, r[i].Length))).ToArray();
        foreach (var row in rows.Prepend(head))
        {
            for (int i = 0; i < row.Count - 1; i++) sb.Append(row[i].PadRight(widths[i])).Append("  ");
            sb.Append(row[^1]).Append('\n');
        }
    }

    /// <summary>A GitHub-flavoured Markdown table; a '|' inside a cell is escaped.</summary>
    public static void Markdown(StringBuilder sb, IReadOnlyList<string> head, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        void Row(IEnumerable<string> cells) => sb.Append("| ").Append(string.Join(" | ", cells.Select(Escape))).Append(" |\n");
        Row(head);
        sb.Append('|').Append(string.Concat(head.Select(_ => "---|"))).Append('\n');
        foreach (var r in rows) Row(r);
    }

    public static string Escape(string cell) => cell.Replace("|", "\\|", StringComparison.Ordinal);
}
