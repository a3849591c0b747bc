using System.Globalization;
using System.Text;

namespace Quant.Core.Reports.Html;

/// <summary>
/// The one place report text becomes HTML: every name that comes from a model or a file (tensor names may hold
/// <c>&lt;&gt;&amp;"</c>) goes through <see cref="Escape"/>, in element text and attribute values alike; numbers are
/// written in the invariant culture so the same inputs give the same bytes on every machine.
/// </summary>
public static class HtmlText
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Text safe in element content and in a double- or single-quoted attribute value.</summary>
    public static string Escape(string? s)
    {
        if (string.IsNullOrEmpty(s)) return "";
        var sb = new StringBuilder(s.Length + 16);
        foreach (var c in s)
        {
            switch (c)
            {
                case '&': sb.Append("&amp;"); break;
                case '<': sb.Append("&lt;"); break;
                case '>': sb.Append("&gt;"); break;
                case '"': sb.Append("&quot;"); break;
                case '\'': sb.Append("&#39;"); break;
                // Control characters other than tab/newline are not allowed in HTML text: shown as U+FFFD.
                case < ' ' when c is not ('\t' or '\n' or '\r'): sb.Append('\uFFFD'); break;
                default: sb.Append(c); break;
            }
        }
        return sb.ToString();
    }

    /// <summary>A number for people: 6 significant digits, "-" when there is none, NaN/inf spelled out.</summary>
    public static string Num(double? v, string format = "G6") => v switch
    {
        null => "-",
        double d when double.IsNaN(d) => "NaN",
        double d when double.IsPositiveInfinity(d) => "inf",
        double d when double.IsNegativeInfinity(d) => "-inf",
        double d => d.ToString(format, Inv),
    };

    /// <summary>An SVG coordinate: one decimal, invariant, no "-0".</summary>
    public static string Coord(double v)
    {
        var r = Math.Round(v, 1);
        return (r == 0 ? 0 : r).ToString("0.#", Inv);
    }

    /// <summary>At most <paramref name="max"/> characters, the middle elided (tensor names differ at both ends).</summary>
    public static string Shorten(string s, int max)
    {
        if (s.Length <= max) return s;
        int head = (max - 1) / 2, tail = max - 1 - head;
        return s[..head] + "\u2026" + s[^tail..];
    }
}
