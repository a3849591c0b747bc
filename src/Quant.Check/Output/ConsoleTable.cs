using Spectre.Console;

namespace Quant.Check.Output;

/// <summary>
/// The one way quant-check shows a table on the console (files get theirs from Quant.Core.Reports.TextTable).
/// Cells are plain text, never markup, so names with brackets print as they are.
/// </summary>
internal static class ConsoleTable
{
    public static void Write(IAnsiConsole console, IReadOnlyList<string> head, IEnumerable<IReadOnlyList<string>> rows, bool interactive)
    {
        var table = new Table { Border = interactive ? TableBorder.Rounded : TableBorder.Markdown };
        foreach (var h in head) table.AddColumn(new TableColumn(new Text(h, interactive ? new Style(decoration: Decoration.Bold) : Style.Plain)));
        foreach (var r in rows) table.AddRow(r.Select(c => (Spectre.Console.Rendering.IRenderable)new Text(c)).ToArray());
        console.Write(table);
    }

    /// <summary>
    /// A table of results on stdout. In plain mode it is drawn off-screen and written without the blank padding
    /// lines and trailing spaces the Markdown border leaves, so a log holds just the table's lines.
    /// </summary>
    public static void Write(IReadOnlyList<string> head, IEnumerable<IReadOnlyList<string>> rows)
    {
        if (Terminal.StdoutInteractive)
        {
            Write(Terminal.Out, head, rows, interactive: true);
            return;
        }
        var text = new StringWriter();
        Write(Terminal.Create(text, interactive: false), head, rows, interactive: false);
        foreach (var line in text.ToString().Split('\n').Select(l => l.TrimEnd()).Where(l => l.Length > 0))
            Console.Out.WriteLine(line);
    }
}
