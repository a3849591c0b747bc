using System.Text;
using static Quant.Core.Reports.Html.HtmlText;

namespace Quant.Core.Reports.Html;

/// <summary>Every check of NAME.check.json (the accuracy gate): pass or fail, the measured value and its bound.</summary>
internal static class ChecksSection
{
    public const string Id = "checks";
    public const string Title = "Checks";

    public static ReportSection Render(CheckData? c, string name)
    {
        if (c is null)
            return ReportSection.NotRun(Id, Title, $"run <code>quant-check check</code> with <code>--out</code> this folder and <code>--name {Escape(name)}</code> (or a build whose config has a <code>checks:</code> section), then this report again.");
        var sb = new StringBuilder();
        sb.Append("<p>").Append(c.Passed ? "<b class=\"pass\">passed</b>" : "<b class=\"fail\">failed</b>").Append(": ")
          .Append(c.Total - c.Failed).Append(" of ").Append(c.Total).Append(" checks passed over ").Append(c.Samples).Append(" sample(s).</p>\n");
        // Failures first, each group in the file's order.
        var rows = c.Checks.Select((r, i) => (r, i)).OrderBy(p => p.r.Passed).ThenBy(p => p.i).Select(p => p.r);
        sb.Append(ReportSection.Table(["", "kind", "stage", "output", "metric", "value", "bound", "message"],
            rows.Select(r => ((string?)(r.Passed ? "pass" : "fail"), (IReadOnlyList<string>)
            [
                r.Passed ? "<b class=\"pass\">pass</b>" : "<b class=\"fail\">FAIL</b>",
                Escape(r.Kind + (r.Rule is null ? "" : " " + r.Rule)), Escape(r.Stage), Escape(r.Output ?? "all"),
                Escape(r.Metric + (r.Over is null ? "" : " (" + r.Over + ")")), Num(r.Value), Escape(r.Bound), Escape(r.Message),
            ]))));
        return new ReportSection(Id, Title, sb.ToString());
    }
}
