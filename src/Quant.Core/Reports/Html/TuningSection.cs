using System.Text;
using static Quant.Core.Reports.Html.HtmlText;

namespace Quant.Core.Reports.Html;

/// <summary>
/// The mixed-precision search (NAME.tune.json): every visited configuration as cost against the first target's
/// accuracy value, the Pareto front joined, the target bound, the baseline and the chosen point marked.
/// </summary>
internal static class TuningSection
{
    public const string Id = "tuning";
    public const string Title = "Tuning: cost against accuracy";

    public static ReportSection Render(TuneData? t, string name)
    {
        if (t is null)
            return ReportSection.NotRunCommand(Id, Title, "tune", name, ".tune.json");
        var sb = new StringBuilder();
        sb.Append("<p>").Append(t.Visited.Count).Append(" configurations visited; cost model: ").Append(Escape(t.CostModel)).Append("; accuracy axis: ")
          .Append(ReportSection.Code(t.ValueKey)).Append(t.TargetMin is double mn ? $" (target \u2265 {Num(mn)})" : t.TargetMax is double mx ? $" (target \u2264 {Num(mx)})" : "")
          .Append(". Target ").Append(t.Met ? "<b class=\"pass\">met</b>" : "<b class=\"fail\">not met</b>").Append(".</p>\n");

        var xs = t.Visited.Select(v => v.Cost).Append(t.Baseline.Cost).Append(t.Best.Cost).Where(double.IsFinite).ToList();
        var ys = t.Visited.Select(v => v.Value).Append(t.Baseline.Value).Append(t.Best.Value).Append(t.TargetMin).Append(t.TargetMax)
            .Where(v => v is double d && double.IsFinite(d)).Select(v => v!.Value).ToList();
        var plot = new SvgPlot(1160, 340, 72, 24, 24, 38, "tuning: cost against accuracy");
        var xTicks = SvgPlot.Ticks(xs.DefaultIfEmpty(0).Min(), xs.DefaultIfEmpty(1).Max(), 8);
        var yTicks = SvgPlot.Ticks(ys.DefaultIfEmpty(0).Min(), ys.DefaultIfEmpty(1).Max(), 6);
        plot.XRange(Math.Min(xTicks[0], xs.DefaultIfEmpty(0).Min()), Math.Max(xTicks[^1], xs.DefaultIfEmpty(1).Max()));
        plot.YRange(Math.Min(yTicks[0], ys.DefaultIfEmpty(0).Min()), Math.Max(yTicks[^1], ys.DefaultIfEmpty(1).Max()));
        plot.Axes(yTicks, t.ValueKey, xTicks, "cost");
        if (t.TargetMin is double min) plot.HLine(min, "target", "target \u2265 " + Num(min));
        if (t.TargetMax is double max) plot.HLine(max, "target", "target \u2264 " + Num(max));
        var front = t.Visited.Where(v => v.Pareto && v.Value is not null).OrderBy(v => v.Cost).ThenBy(v => v.Step).ToList();
        plot.Line(front.Select(v => (v.Cost, v.Value)).ToList(), "front");
        foreach (var v in t.Visited)
            if (v.Value is double y && double.IsFinite(y))
                plot.Dot(v.Cost, y, v.Pareto ? 4 : 3, v.Pareto ? "pt pareto" : v.Meets ? "pt meets" : "pt visited",
                    $"step {v.Step}: cost {Num(v.Cost)}, {t.ValueKey} {Num(y)}{(v.Meets ? ", meets the target" : "")}{(v.Pareto ? ", on the Pareto front" : "")}");
        if (t.Baseline.Value is double by)
        {
            plot.Dot(t.Baseline.Cost, by, 6, "pt baseline", $"baseline (the config as given): cost {Num(t.Baseline.Cost)}, {t.ValueKey} {Num(by)}");
            plot.Text(plot.X(t.Baseline.Cost) + 9, plot.Y(by) + 4, "baseline", "mark-label");
        }
        if (t.Best.Value is double cy)
        {
            plot.Dot(t.Best.Cost, cy, 7, "pt best", $"chosen: cost {Num(t.Best.Cost)}, {t.ValueKey} {Num(cy)}");
            plot.Text(plot.X(t.Best.Cost) + 10, plot.Y(cy) - 8, "chosen", "mark-label best");
        }
        sb.Append(plot.Finish()).Append('\n');
        sb.Append(ReportSection.Table(["", "cost", t.ValueKey, "changes", "config"],
        [
            (null, ["baseline", Num(t.Baseline.Cost), Num(t.Baseline.Value), "0", "as given"]),
            ("chosen", ["chosen", Num(t.Best.Cost), Num(t.Best.Value), t.Best.Changes.ToString(System.Globalization.CultureInfo.InvariantCulture), Escape(t.Best.Config ?? "-")]),
        ]));
        return new ReportSection(Id, Title, sb.ToString());
    }
}
