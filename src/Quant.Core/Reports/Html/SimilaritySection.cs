using System.Globalization;
using System.Text;
using static Quant.Core.Reports.Html.HtmlText;

namespace Quant.Core.Reports.Html;

/// <summary>
/// Cosine and SQNR of every compared tensor in the reference model's graph order (NAME.compare.json): where along
/// the graph the quantized model drifts away, with the worst tensors, the compare findings and the first NaN/inf.
/// </summary>
internal static class SimilaritySection
{
    public const string Id = "similarity";
    public const string Title = "Per-layer similarity along the graph";
    public const int WorstRows = 15;

    public static ReportSection Render(CompareData? c, string name)
    {
        if (c is null)
            return ReportSection.NotRunCommand(Id, Title, "compare", name, ".compare.json");
        var sb = new StringBuilder();
        sb.Append("<p>").Append(Escape(c.Actual)).Append(" against ").Append(Escape(c.Reference)).Append(", ")
          .Append(c.Tensors.Count).Append(" tensors in graph order, ").Append(c.Samples).Append(" sample(s). Hover a point for its tensor; red points carry a finding.</p>\n");
        if (c.FirstNonFinite is { } nf) sb.Append("<p class=\"bad\">First non-finite value: ").Append(Escape(nf)).Append(".</p>\n");
        sb.Append(Chart(c, "cosine", t => t.Cosine, "cosine")).Append('\n');
        sb.Append(Chart(c, "sqnr", t => t.Sqnr, "SQNR (dB)")).Append('\n');

        var worst = c.Tensors.Select((t, i) => (t, i)).Where(p => p.t.Cosine is double v && !double.IsNaN(v))
            .OrderBy(p => p.t.Cosine).ThenBy(p => p.i).Take(WorstRows).ToList();
        if (worst.Count > 0)
        {
            sb.Append("<h3>Lowest cosine</h3>\n");
            sb.Append(ReportSection.Table(["#", "tensor", "node", "op", "qtype", "cosine", "SQNR dB", "scale", "clipped", "flags"],
                worst.Select(p => ((string?)(p.t.Flags.Count > 0 ? "flagged" : null), (IReadOnlyList<string>)
                [
                    (p.i + 1).ToString(CultureInfo.InvariantCulture), Escape(p.t.Tensor), Escape(p.t.Node), Escape(p.t.OpType), ReportSection.QType(p.t.QType),
                    Num(p.t.Cosine), Num(p.t.Sqnr, "F2"), Num(p.t.Scale), Num(p.t.Clipped, "P3"), Escape(string.Join(", ", p.t.Flags)),
                ]))));
        }
        if (c.Findings.Count > 0)
        {
            sb.Append("\n<h3>Findings</h3>\n<ul>");
            foreach (var f in c.Findings)
                sb.Append("<li><b>").Append(Escape(f.Flag)).Append("</b> at ").Append(Escape(f.Tensor)).Append(" (").Append(Escape(f.Node)).Append("): ")
                  .Append(Escape(f.Message)).Append("</li>");
            sb.Append("</ul>");
        }
        return new ReportSection(Id, Title, sb.ToString());
    }

    private static string Chart(CompareData c, string what, Func<CompareRow, double?> value, string label)
    {
        var values = c.Tensors.Select(value).Where(v => v is double d && double.IsFinite(d)).Select(v => v!.Value).ToList();
        var plot = new SvgPlot(1160, 240, 64, 16, 16, 34, $"{label} per tensor in graph order");
        int n = Math.Max(1, c.Tensors.Count);
        plot.XRange(0.5, n + 0.5);
        double lo = values.Count == 0 ? 0 : values.Min(), hi = values.Count == 0 ? 1 : values.Max();
        if (what == "cosine") hi = 1;
        var yTicks = SvgPlot.Ticks(lo, hi, 5);
        plot.YRange(Math.Min(lo, yTicks[0]), Math.Max(hi, yTicks[^1]));
        plot.Axes(yTicks, label, SvgPlot.Ticks(1, n, 10).Where(t => t >= 1 && t == Math.Floor(t)).ToList(), "tensor (graph order)");
        plot.Line(c.Tensors.Select((t, i) => ((double)(i + 1), value(t))).ToList(), "series");
        for (int i = 0; i < c.Tensors.Count; i++)
        {
            var t = c.Tensors[i];
            if (value(t) is not double v || !double.IsFinite(v)) continue;
            string cls = t.Flags.Count > 0 ? "pt flagged" : "pt q-" + (t.QType ?? "float32");
            plot.Dot(i + 1, v, t.Flags.Count > 0 ? 3.5 : 2.5, cls,
                $"#{i + 1} {t.Tensor} ({t.Node}, {t.OpType}, {t.QType ?? "float"}): cosine {Num(t.Cosine)}, SQNR {Num(t.Sqnr, "F2")} dB"
                + (t.Flags.Count > 0 ? "; " + string.Join(", ", t.Flags) : ""));
        }
        return plot.Finish();
    }
}
