using System.Globalization;
using System.Text;
using Quant.Core.Calibration;
using static Quant.Core.Reports.Html.HtmlText;

namespace Quant.Core.Reports.Html;

/// <summary>
/// Calibration histograms of the activation tensors (NAME.calibration.qcs, the statistics the export collected)
/// with the float range the chosen scale keeps (model_check.json <c>activations</c>) and the data's min/max marked.
/// A big model has hundreds of tensors: the page carries <see cref="MaxTensors"/> of them — the lowest cosine in
/// NAME.compare.json when there is one, else the largest clipped share — and a select box to switch between them.
/// </summary>
public static class HistogramSection
{
    public const string Id = "histograms";
    public const string Title = "Per-tensor histograms and clipping ranges";
    public const int MaxTensors = 20;
    public const int DisplayBins = 120;

    private sealed record Candidate(TensorStatistics Stats, ActivationRange? Range, double Clipped, double? Cosine);

    public static ReportSection Render(CalibrationStatistics? stats, ModelCheckData m, CompareData? compare, string name)
    {
        if (stats is null)
            return ReportSection.NotRun(Id, Title, $"no {Escape(name)}.calibration.qcs in this folder: run <code>quant-check export</code> with <code>--out</code> this folder (it writes the calibration statistics cache there unless told otherwise).");
        var ranges = m.Activations?.ToDictionary(a => a.Tensor, StringComparer.Ordinal);
        var cosine = compare?.Tensors.GroupBy(t => t.Tensor, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().Cosine, StringComparer.Ordinal);
        var candidates = stats.Tensors
            .Where(t => t.Count > 0 && (ranges is null || ranges.ContainsKey(t.Name)))
            .Select(t =>
            {
                ActivationRange? r = null;
                ranges?.TryGetValue(t.Name, out r);
                double? cos = cosine is not null && cosine.TryGetValue(t.Name, out var c) ? c : null;
                return new Candidate(t, r, r is null ? 0 : ClippedShare(t, r), cos);
            }).ToList();
        string ranking = cosine is not null ? "the lowest cosine in the compare run, then the largest clipped share" : "the largest clipped share";
        var chosen = candidates
            .OrderBy(c => c.Cosine is double v && !double.IsNaN(v) ? v : double.PositiveInfinity)
            .ThenByDescending(c => c.Clipped).ThenBy(c => c.Stats.Name, StringComparer.Ordinal)
            .Take(MaxTensors).ToList();

        var sb = new StringBuilder();
        sb.Append("<p>").Append(candidates.Count).Append(" quantized activation tensors were calibrated")
          .Append(chosen.Count < candidates.Count ? $"; shown: the {chosen.Count} with {ranking}" : "")
          .Append(". Counts on a log scale; <span class=\"clip-key\">dashed red</span>: the range the chosen scale keeps (values outside clip), ")
          .Append("<span class=\"range-key\">grey</span>: the data's min and max.</p>\n");
        if (m.Activations is null)
            sb.Append("<p class=\"note\">This model_check.json has no per-tensor scales (an older export): re-run quant-check export to see the clipping ranges.</p>\n");
        if (chosen.Count == 0) return new ReportSection(Id, Title, sb.Append("<p>No calibrated tensor to show.</p>").ToString());

        sb.Append("<label>tensor <select id=\"hist-pick\">");
        for (int i = 0; i < chosen.Count; i++)
            sb.Append("<option value=\"hist-").Append(i).Append("\">").Append(Escape(Label(chosen[i]))).Append("</option>");
        sb.Append("</select></label>\n<div id=\"hist-figures\">\n");
        for (int i = 0; i < chosen.Count; i++)
        {
            var c = chosen[i];
            sb.Append("<figure class=\"hist\" id=\"hist-").Append(i).Append("\">").Append(Chart(c)).Append("<figcaption>")
              .Append(Escape(Caption(c))).Append("</figcaption></figure>\n");
        }
        sb.Append("</div>");
        return new ReportSection(Id, Title, sb.ToString());
    }

    private static string Label(Candidate c) =>
        Shorten(c.Stats.Name, 60) + (c.Cosine is double v ? $" \u2014 cosine {Num(v)}" : "") + (c.Range is null ? "" : $" \u2014 clipped {Num(c.Clipped, "P3")}");

    private static string Caption(Candidate c)
    {
        var t = c.Stats;
        var s = $"{t.Name}: {t.Count.ToString(CultureInfo.InvariantCulture)} values in [{Num(t.Min)}, {Num(t.Max)}]";
        if (t.NonFinite > 0) s += $", {t.NonFinite.ToString(CultureInfo.InvariantCulture)} NaN/inf";
        if (c.Range is { } r)
            s += $"; {r.QType} scale {Num(r.Scale)} ({r.Method}) keeps [{Num(r.ClipMin)}, {Num(r.ClipMax)}], about {Num(c.Clipped, "P3")} of the values clipped";
        if (c.Cosine is double cos) s += $"; cosine {Num(cos)} in the compare run";
        return s;
    }

    /// <summary>The share of calibration values outside the kept range, from the histogram (bins straddling a bound count in proportion).</summary>
    internal static double ClippedShare(TensorStatistics t, ActivationRange r)
    {
        if (t.Count == 0 || t.RangeExponent is null) return 0;
        double w = t.BinWidth, outside = 0;
        var pos = t.PositiveHistogram;
        var neg = t.NegativeHistogram;
        for (int i = 0; i < t.NumBins; i++)
        {
            if (pos[i] > 0) outside += pos[i] * Math.Clamp(((i + 1) * w - r.ClipMax) / w, 0, 1);
            if (neg[i] > 0) outside += neg[i] * Math.Clamp(((i + 1) * w + r.ClipMin) / w, 0, 1);
        }
        return outside / t.Count;
    }

    private static string Chart(Candidate c)
    {
        var t = c.Stats;
        double lo = Math.Min(t.Min, 0), hi = Math.Max(t.Max, 0);
        if (c.Range is { } r)
        {
            hi = Math.Max(hi, r.ClipMax);
            if (t.Min < 0) lo = Math.Min(lo, r.ClipMin);
        }
        double pad = (hi - lo) * 0.03;
        if (!(pad > 0)) pad = 1;
        // All-non-negative data (after a ReLU) starts at 0: half a plot of nothing would hide the shape.
        if (lo < 0) lo -= pad;
        hi += pad;

        var counts = new long[DisplayBins];
        double w = t.BinWidth, span = hi - lo;
        var pos = t.PositiveHistogram;
        var neg = t.NegativeHistogram;
        void Add(double center, long n)
        {
            if (n == 0) return;
            int k = (int)Math.Floor((center - lo) / span * DisplayBins);
            counts[Math.Clamp(k, 0, DisplayBins - 1)] += n;
        }
        for (int i = 0; i < t.NumBins; i++)
        {
            Add((i + 0.5) * w, pos[i]);
            Add(-(i + 0.5) * w, neg[i]);
        }
        long peak = Math.Max(1, counts.Max());

        var plot = new SvgPlot(1160, 230, 64, 22, 16, 34, $"calibration histogram of {t.Name}");
        plot.XRange(lo, hi);
        plot.YRange(0.5, peak * 1.5, log: true);
        plot.Axes(SvgPlot.LogTicks(1, peak), "count", SvgPlot.Ticks(lo, hi, 10), "value");
        plot.Columns(counts.Select((n, k) => (lo + span * k / DisplayBins, lo + span * (k + 1) / DisplayBins, (double)Math.Max(n, 0.5))), "hist-bar");
        plot.VLine(t.Min, "range", null);
        plot.VLine(t.Max, "range", null);
        if (c.Range is { } kept)
        {
            if (kept.ClipMin >= lo) plot.VLine(kept.ClipMin, "clip", "clip " + Num(kept.ClipMin, "G4"), "start");
            plot.VLine(kept.ClipMax, "clip", "clip " + Num(kept.ClipMax, "G4"), "end");
        }
        return plot.Finish();
    }
}
