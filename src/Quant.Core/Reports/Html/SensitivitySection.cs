using System.Globalization;
using System.Text;
using static Quant.Core.Reports.Html.HtmlText;

namespace Quant.Core.Reports.Html;

/// <summary>
/// The sensitivity candidates (NAME.sensitivity.json), worst first, as bars of how much each one costs: 1 − cosine
/// for cosine, the value itself for error metrics (mse, l1, ...), the gap to the best candidate for other metrics
/// where higher is better.
/// </summary>
internal static class SensitivitySection
{
    public const string Id = "sensitivity";
    public const string Title = "Sensitivity";
    public const int MaxBars = 40;

    public static ReportSection Render(SensitivityData? s, string name)
    {
        if (s is null)
            return ReportSection.NotRunCommand(Id, Title, "sensitivity", name, ".sensitivity.json");
        bool higherBetter = HigherIsBetter(s.Metric);
        var ranked = s.Candidates.Select((c, i) => (c, i))
            .OrderBy(p => double.IsNaN(p.c.Value) ? 0 : 1) // NaN is the worst there is
            .ThenBy(p => higherBetter ? p.c.Value : -p.c.Value).ThenBy(p => p.i).Select(p => p.c).ToList();
        var shown = ranked.Take(MaxBars).ToList();
        double best = s.Candidates.Where(c => double.IsFinite(c.Value)).Select(c => c.Value).DefaultIfEmpty(0).Max();
        double Badness(double v) => !double.IsFinite(v) ? double.NaN : s.Metric == "cosine" ? 1 - v : higherBetter ? best - v : v;
        string what = s.Metric == "cosine" ? "1 \u2212 cosine" : higherBetter ? $"{s.Metric} below the best" : s.Metric;

        var sb = new StringBuilder();
        sb.Append("<p>").Append(s.Candidates.Count).Append(' ').Append(Escape(s.Type)).Append(" candidates, mode ").Append(Escape(s.Mode))
          .Append(s.Mode == "alone" ? " (only the candidate quantized, the rest float)" : s.Mode == "restore" ? " (everything quantized, the candidate at higher precision)" : "")
          .Append(", ").Append(s.Samples).Append(" sample(s); bars: ").Append(Escape(what)).Append(", worst first")
          .Append(shown.Count < ranked.Count ? $" (the {shown.Count} worst of {ranked.Count})" : "").Append(".</p>\n");

        const double rowH = 18, left = 300, width = 1160, right = 110;
        var plot = new SvgPlot(width, shown.Count * rowH + 8, left, 4, right, 4, $"sensitivity bars, {what}");
        double max = shown.Select(c => Badness(c.Value)).Where(double.IsFinite).DefaultIfEmpty(0).Max();
        if (!(max > 0)) max = 1;
        for (int i = 0; i < shown.Count; i++)
        {
            var c = shown[i];
            double y = 4 + i * rowH, b = Badness(c.Value);
            double w = double.IsFinite(b) ? Math.Max(1, (width - left - right) * Math.Max(0, b) / max) : width - left - right;
            string label = c.Name + (c.OpType.Length > 0 ? $" ({c.OpType})" : "");
            plot.Text(left - 6, y + 13, Shorten(label, 48), "bar-name", "end");
            plot.Raw($"<rect class=\"bar{(double.IsFinite(b) ? "" : " flagged")}\" x=\"{Coord(left)}\" y=\"{Coord(y + 2)}\" width=\"{Coord(w)}\" height=\"{Coord(rowH - 4)}\">"
                + $"<title>{Escape($"{label} at {c.QType}: {s.Metric} {Num(c.Value)}")}</title></rect>");
            plot.Text(left + w + 4, y + 13, $"{s.Metric} {Num(c.Value, "G5")}", "bar-value");
        }
        sb.Append(plot.Finish());
        return new ReportSection(Id, Title, sb.ToString());
    }

    /// <summary>Similarity-like metrics (cosine, SQNR, PSNR, accuracies) are better higher; error metrics lower.</summary>
    public static bool HigherIsBetter(string metric)
    {
        var m = metric.ToLowerInvariant();
        return m is "cosine" or "sqnr" or "psnr" || m.Contains("accuracy", StringComparison.Ordinal) || m.Contains("iou", StringComparison.Ordinal)
            || m.EndsWith("f1", StringComparison.Ordinal) || m.Contains("precision", StringComparison.Ordinal) || m.Contains("recall", StringComparison.Ordinal);
    }
}
