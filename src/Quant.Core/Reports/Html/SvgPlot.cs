using System.Text;
using static Quant.Core.Reports.Html.HtmlText;

namespace Quant.Core.Reports.Html;

/// <summary>
/// A small inline-SVG plot area: a data rectangle with linear (or log10) axes, ticks, and the few marks the report's
/// charts draw. Coordinates are rounded to 0.1 px and written in the invariant culture, so a chart is the same bytes
/// on every machine; styling is by class (the page's CSS), so charts carry no colours of their own.
/// </summary>
internal sealed class SvgPlot
{
    private readonly StringBuilder _sb = new();
    private readonly double _w, _h, _left, _top, _right, _bottom;
    private double _x0, _x1 = 1, _y0, _y1 = 1;
    private bool _logY;

    public SvgPlot(double width, double height, double left, double top, double right, double bottom, string title)
    {
        _w = width; _h = height; _left = left; _top = top; _right = right; _bottom = bottom;
        _sb.Append("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ").Append(Coord(width)).Append(' ').Append(Coord(height))
           .Append("\" width=\"").Append(Coord(width)).Append("\" height=\"").Append(Coord(height)).Append("\" role=\"img\" aria-label=\"")
           .Append(Escape(title)).Append("\">");
    }

    public double PlotLeft => _left;
    public double PlotRight => _w - _right;
    public double PlotTop => _top;
    public double PlotBottom => _h - _bottom;

    public void XRange(double min, double max) { (_x0, _x1) = Widen(min, max); }

    public void YRange(double min, double max, bool log = false)
    {
        _logY = log;
        (_y0, _y1) = log ? Widen(Math.Log10(Math.Max(min, 1e-300)), Math.Log10(Math.Max(max, 1e-300))) : Widen(min, max);
    }

    public double X(double v) => _left + (v - _x0) / (_x1 - _x0) * (PlotRight - _left);

    public double Y(double v)
    {
        double t = _logY ? Math.Log10(Math.Max(v, 1e-300)) : v;
        t = Math.Clamp(t, _y0, _y1);
        return PlotBottom - (t - _y0) / (_y1 - _y0) * (PlotBottom - _top);
    }

    /// <summary>The frame, grid lines and tick labels of both axes (x ticks only when given).</summary>
    public void Axes(IReadOnlyList<double> yTicks, string yLabel, IReadOnlyList<double>? xTicks = null, string? xLabel = null, string yFormat = "G4", string xFormat = "G4")
    {
        foreach (var t in yTicks)
        {
            var y = Coord(Y(t));
            _sb.Append("<line class=\"grid\" x1=\"").Append(Coord(_left)).Append("\" x2=\"").Append(Coord(PlotRight))
               .Append("\" y1=\"").Append(y).Append("\" y2=\"").Append(y).Append("\"/>");
            Text(_left - 4, Y(t) + 4, Num(t, yFormat), "tick", "end");
        }
        foreach (var t in xTicks ?? [])
        {
            var x = Coord(X(t));
            _sb.Append("<line class=\"grid\" x1=\"").Append(x).Append("\" x2=\"").Append(x)
               .Append("\" y1=\"").Append(Coord(_top)).Append("\" y2=\"").Append(Coord(PlotBottom)).Append("\"/>");
            Text(X(t), PlotBottom + 14, Num(t, xFormat), "tick", "middle");
        }
        _sb.Append("<rect class=\"frame\" x=\"").Append(Coord(_left)).Append("\" y=\"").Append(Coord(_top)).Append("\" width=\"")
           .Append(Coord(PlotRight - _left)).Append("\" height=\"").Append(Coord(PlotBottom - _top)).Append("\"/>");
        _sb.Append("<text class=\"axis\" transform=\"translate(").Append(Coord(12)).Append(' ').Append(Coord((_top + PlotBottom) / 2))
           .Append(") rotate(-90)\" text-anchor=\"middle\">").Append(Escape(yLabel)).Append("</text>");
        if (xLabel is not null) Text((_left + PlotRight) / 2, _h - 4, xLabel, "axis", "middle");
    }

    public void Text(double x, double y, string text, string cls, string anchor = "start")
    {
        _sb.Append("<text class=\"").Append(cls).Append("\" x=\"").Append(Coord(x)).Append("\" y=\"").Append(Coord(y))
           .Append("\" text-anchor=\"").Append(anchor).Append("\">").Append(Escape(text)).Append("</text>");
    }

    /// <summary>A connected line through the points (in data units); a null y breaks the line.</summary>
    public void Line(IReadOnlyList<(double X, double? Y)> points, string cls)
    {
        var d = new StringBuilder();
        bool pen = false;
        foreach (var (x, y) in points)
        {
            if (y is not double v || !double.IsFinite(v)) { pen = false; continue; }
            d.Append(pen ? 'L' : 'M').Append(Coord(X(x))).Append(' ').Append(Coord(Y(v)));
            pen = true;
        }
        if (d.Length > 0) _sb.Append("<path class=\"").Append(cls).Append("\" d=\"").Append(d).Append("\"/>");
    }

    /// <summary>Filled rectangles (x0, x1, y) from the plot's bottom edge, as one path.</summary>
    public void Columns(IEnumerable<(double X0, double X1, double Y)> columns, string cls)
    {
        var d = new StringBuilder();
        foreach (var (a, b, y) in columns)
        {
            double top = Y(y);
            if (top >= PlotBottom - 0.05) continue;
            d.Append('M').Append(Coord(X(a))).Append(' ').Append(Coord(PlotBottom)).Append('V').Append(Coord(top))
             .Append('H').Append(Coord(X(b))).Append('V').Append(Coord(PlotBottom)).Append('Z');
        }
        if (d.Length > 0) _sb.Append("<path class=\"").Append(cls).Append("\" d=\"").Append(d).Append("\"/>");
    }

    /// <summary>A point with a hover title (the browser's tooltip).</summary>
    public void Dot(double x, double y, double r, string cls, string? title)
    {
        _sb.Append("<circle class=\"").Append(cls).Append("\" cx=\"").Append(Coord(X(x))).Append("\" cy=\"").Append(Coord(Y(y)))
           .Append("\" r=\"").Append(Coord(r)).Append('"');
        if (title is null) _sb.Append("/>");
        else _sb.Append("><title>").Append(Escape(title)).Append("</title></circle>");
    }

    /// <summary>A horizontal line across the plot at data y, labelled at its right end.</summary>
    public void HLine(double y, string cls, string? label)
    {
        var py = Coord(Y(y));
        _sb.Append("<line class=\"").Append(cls).Append("\" x1=\"").Append(Coord(_left)).Append("\" x2=\"").Append(Coord(PlotRight))
           .Append("\" y1=\"").Append(py).Append("\" y2=\"").Append(py).Append("\"/>");
        if (label is not null) Text(PlotRight - 4, Y(y) - 4, label, "mark-label " + cls, "end");
    }

    /// <summary>A vertical line down the plot at data x, labelled at its top.</summary>
    public void VLine(double x, string cls, string? label, string anchor = "middle")
    {
        var px = Coord(X(x));
        _sb.Append("<line class=\"").Append(cls).Append("\" x1=\"").Append(px).Append("\" x2=\"").Append(px)
           .Append("\" y1=\"").Append(Coord(_top)).Append("\" y2=\"").Append(Coord(PlotBottom)).Append("\"/>");
        if (label is not null) Text(X(x), _top - 4, label, "mark-label " + cls, anchor);
    }

    /// <summary>Raw SVG (already escaped by the caller).</summary>
    public void Raw(string svg) => _sb.Append(svg);

    public string Finish() => _sb.Append("</svg>").ToString();

    /// <summary>About <paramref name="count"/> round tick values covering [min, max] (1, 2 or 5 times a power of ten apart).</summary>
    public static IReadOnlyList<double> Ticks(double min, double max, int count = 5)
    {
        (min, max) = Widen(min, max);
        double raw = (max - min) / Math.Max(1, count);
        double mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        // The round step nearest the raw one (by ratio): 1..126 in about 6 steps is 20, not 50.
        double step = new[] { 1.0, 2.0, 5.0, 10.0 }.Select(m => m * mag).MinBy(s => Math.Abs(Math.Log(s / raw)));
        var ticks = new List<double>();
        for (double t = Math.Ceiling(min / step - 1e-9) * step; t <= max + step * 1e-9; t += step)
            ticks.Add(Math.Abs(t) < step * 1e-9 ? 0 : Math.Round(t / step) * step);
        return ticks;
    }

    /// <summary>Powers of ten covering [min, max] for a log axis.</summary>
    public static IReadOnlyList<double> LogTicks(double min, double max)
    {
        var ticks = new List<double>();
        for (int e = (int)Math.Ceiling(Math.Log10(Math.Max(min, 1e-300)) - 1e-9); e <= (int)Math.Floor(Math.Log10(Math.Max(max, 1e-300)) + 1e-9); e++)
            ticks.Add(Math.Pow(10, e));
        return ticks;
    }

    /// <summary>A range with some width: an empty or inverted one grows around its value.</summary>
    private static (double, double) Widen(double min, double max)
    {
        if (!double.IsFinite(min) || !double.IsFinite(max)) return (0, 1);
        if (max > min) return (min, max);
        double pad = Math.Abs(min) > 0 ? Math.Abs(min) * 0.05 : 1;
        return (min - pad, max + pad);
    }
}
