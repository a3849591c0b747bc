using System.Text;
using static Quant.Core.Reports.Html.HtmlText;

namespace Quant.Core.Reports.Html;

/// <summary>
/// Every node with its op, compute qtype, input/output qtypes and why it has that qtype: the config layer that
/// decided it (preset, all_node_type, op_config, subgraph_config, node_config, model_output_type) and any change
/// the target's rules made afterwards (the change log, i.e. NAME.qconfig_changelogs.txt).
/// </summary>
internal static class PrecisionSection
{
    public const string Id = "precision";
    public const string Title = "Precision map";

    public static ReportSection Render(ModelCheckData m)
    {
        var sb = new StringBuilder();
        int total = m.Counts.Sum(c => c.Nodes);
        sb.Append("<p>").Append(total).Append(" nodes (shape-only nodes not counted):");
        foreach (var (q, n) in m.Counts.Where(c => c.Nodes > 0)) sb.Append(' ').Append(ReportSection.QType(q)).Append(' ').Append(n);
        sb.Append(". Activation calibration: ").Append(ReportSection.Code(m.CalibrationMethod)).Append(".</p>\n");
        sb.Append(CountBar(m.Counts, total));

        var changes = m.Changes.GroupBy(c => c.Node).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        bool sourceKnown = m.Layers.Any(l => l.Source is not null);
        if (!sourceKnown)
            sb.Append("<p class=\"note\">This model_check.json was written by an older export without the deciding config layer per node; re-run quant-check export to see it.</p>\n");
        sb.Append("<div class=\"scroll\">");
        sb.Append(ReportSection.Table(["#", "node", "op", "compute", "inputs", "output", "why", "scales", "method"],
            m.Layers.Select((l, i) =>
            {
                changes.TryGetValue(l.Node, out var changed);
                string why = Why(l, changed);
                return ((string?)(changed is null ? null : "changed"), (IReadOnlyList<string>)
                [
                    (i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture),
                    Escape(l.Node), Escape(l.OpType), ReportSection.QType(l.Compute),
                    string.Join(" ", l.Inputs.Select(InputChip)), ReportSection.QType(l.Output), why, Escape(l.Scales), Escape(l.Method),
                ]);
            }), "dense"));
        sb.Append("</div>");
        return new ReportSection(Id, Title, sb.ToString());
    }

    private static string Why(PrecisionRow l, List<ChangeRow>? changed)
    {
        var sb = new StringBuilder();
        if (l.Source is { } s) sb.Append("<span class=\"src src-").Append(SourceKind(s)).Append("\">").Append(Escape(s)).Append("</span>");
        foreach (var c in changed ?? [])
            sb.Append("<br><span class=\"fallback\">").Append(c.Where == "node" ? "" : Escape(c.Where) + ": ")
              .Append(Escape(c.From)).Append(" \u2192 ").Append(Escape(c.To)).Append(": ").Append(Escape(c.Reason)).Append("</span>");
        return sb.Length == 0 ? "-" : sb.ToString();
    }

    /// <summary>The CSS kind of a config layer: preset, op_config, node_config, ... (the first word).</summary>
    private static string SourceKind(string source)
    {
        var first = source.Split(' ')[0];
        return first.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') ? first : "other";
    }

    /// <summary>An input's qtype as the model check writes it ("int8", "int8(w)", "float32(b)", "fused", "param", "-").</summary>
    private static string InputChip(string input)
    {
        int p = input.IndexOf('(');
        var q = p > 0 ? input[..p] : input;
        return q is "int8" or "int16" or "float16" or "float32"
            ? $"<span class=\"q q-{q}\">{Escape(input)}</span>"
            : $"<span class=\"q\">{Escape(input)}</span>";
    }

    /// <summary>The node counts per qtype as one stacked bar.</summary>
    private static string CountBar(IReadOnlyList<(string QType, int Nodes)> counts, int total)
    {
        if (total == 0) return "";
        var plot = new SvgPlot(900, 34, 0, 4, 0, 4, "nodes per compute qtype");
        double x = 0;
        foreach (var (q, n) in counts.Where(c => c.Nodes > 0))
        {
            double w = 900.0 * n / total;
            plot.Raw($"<rect class=\"q-{Escape(q)}\" x=\"{Coord(x)}\" y=\"4\" width=\"{Coord(w)}\" height=\"26\"><title>{Escape(q)}: {n} nodes</title></rect>");
            if (w > 60) plot.Text(x + 6, 22, $"{q} {n}", "bar-label");
            x += w;
        }
        return plot.Finish() + "\n";
    }
}
