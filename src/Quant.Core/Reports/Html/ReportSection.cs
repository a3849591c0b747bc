using System.Text;
using static Quant.Core.Reports.Html.HtmlText;

namespace Quant.Core.Reports.Html;

/// <summary>One section of the page: its id (the link target and what tests look for), heading and body.</summary>
public sealed record ReportSection(string Id, string Title, string Body)
{
    /// <summary>The section's place when its data does not exist: one line saying how to get it.</summary>
    public static ReportSection NotRun(string id, string title, string how) =>
        new(id, title, $"<p class=\"not-run\">not run: {how}</p>");

    /// <summary>The not-run line of a section whose file one command writes into the folder.</summary>
    public static ReportSection NotRunCommand(string id, string title, string command, string name, string suffix) =>
        NotRun(id, title, $"run <code>quant-check {command}</code> with <code>--out</code> this folder and <code>--name {Escape(name)}</code> (writes {Escape(name + suffix)}), then this report again.");

    public void Write(StringBuilder sb) =>
        sb.Append("<section id=\"").Append(Id).Append("\">\n<h2>").Append(Escape(Title)).Append("</h2>\n").Append(Body).Append("\n</section>\n");

    /// <summary>A table: headers, then rows of already-escaped cells; the row class (e.g. "fail") optional.</summary>
    public static string Table(IReadOnlyList<string> headers, IEnumerable<(string? Class, IReadOnlyList<string> Cells)> rows, string? cls = null)
    {
        var sb = new StringBuilder();
        sb.Append("<table").Append(cls is null ? "" : $" class=\"{cls}\"").Append("><thead><tr>");
        foreach (var h in headers) sb.Append("<th>").Append(Escape(h)).Append("</th>");
        sb.Append("</tr></thead>\n<tbody>\n");
        foreach (var (rowClass, cells) in rows)
        {
            sb.Append(rowClass is null ? "<tr>" : $"<tr class=\"{rowClass}\">");
            foreach (var c in cells) sb.Append("<td>").Append(c).Append("</td>");
            sb.Append("</tr>\n");
        }
        return sb.Append("</tbody></table>").ToString();
    }

    /// <summary>A qtype as a coloured chip (class q-int8, q-int16, q-float16, q-float32).</summary>
    public static string QType(string? qtype) => qtype is null or "-" or ""
        ? "-"
        : $"<span class=\"q q-{Escape(qtype)}\">{Escape(qtype)}</span>";

    public static string Code(string s) => "<code>" + Escape(s) + "</code>";
}
