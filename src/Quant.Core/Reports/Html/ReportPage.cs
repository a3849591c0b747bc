using System.Text;
using Quant.Core.Diagnostics;
using static Quant.Core.Reports.Html.HtmlText;

namespace Quant.Core.Reports.Html;

/// <summary>
/// NAME.report.html: one self-contained page (inline CSS, inline SVG, a few lines of inline script for the histogram
/// picker; no external file of any kind, and a Content-Security-Policy that forbids loading one) with the sections in
/// the order a user debugging accuracy reads them. Deterministic: the same input files give the same bytes.
/// </summary>
public static class ReportPage
{
    /// <summary>The section ids, in page order (links, tests).</summary>
    public static readonly IReadOnlyList<string> SectionIds =
        [PrecisionSection.Id, SimilaritySection.Id, SensitivitySection.Id, HistogramSection.Id, TuningSection.Id, ChecksSection.Id];

    public static IReadOnlyList<ReportSection> Sections(ReportInputs r) =>
    [
        PrecisionSection.Render(r.ModelCheck),
        SimilaritySection.Render(r.Compare, r.Name),
        SensitivitySection.Render(r.Sensitivity, r.Name),
        HistogramSection.Render(r.Calibration, r.ModelCheck, r.Compare, r.Name),
        TuningSection.Render(r.Tune, r.Name),
        ChecksSection.Render(r.Check, r.Name),
    ];

    public static string Render(ReportInputs r)
    {
        var sections = Sections(r);
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
          .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n")
          .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
          .Append("<title>").Append(Escape($"Quant.Build report: {r.Name}")).Append("</title>\n<style>").Append(Css).Append("</style>\n</head>\n<body>\n");
        sb.Append("<header>\n<h1>Quant.Build report: ").Append(Escape(r.Name)).Append("</h1>\n<p>model ").Append(ReportSection.Code(r.ModelCheck.Model))
          .Append(", activation calibration ").Append(ReportSection.Code(r.ModelCheck.CalibrationMethod));
        foreach (var (output, min, avg, _) in r.ModelCheck.OutputCosine)
            sb.Append("; ").Append(ReportSection.Code(output)).Append(" cosine float vs qat min ").Append(Num(min)).Append(" / avg ").Append(Num(avg));
        if (r.Check is { } c) sb.Append("; checks ").Append(c.Passed ? "<b class=\"pass\">passed</b>" : $"<b class=\"fail\">{c.Failed} failed</b>");
        sb.Append(".</p>\n<nav>");
        foreach (var s in sections)
            sb.Append("<a href=\"#").Append(s.Id).Append("\"").Append(s.Body.StartsWith("<p class=\"not-run\">", StringComparison.Ordinal) ? " class=\"off\"" : "")
              .Append('>').Append(Escape(s.Title)).Append("</a> ");
        sb.Append("</nav>\n</header>\n<main>\n");
        foreach (var s in sections) s.Write(sb);
        sb.Append("</main>\n<script>").Append(Script).Append("</script>\n</body>\n</html>\n");
        return sb.ToString();
    }

    /// <summary>Renders and writes the page atomically (readers see the old file or the whole new one).</summary>
    public static string Write(ReportInputs r, string path)
    {
        var html = Render(r);
        AtomicText.Write(path, html);
        return html;
    }

    // Shows one histogram at a time; without script every figure stays visible.
    private const string Script =
        "(function(){var s=document.getElementById('hist-pick');if(!s)return;" +
        "function show(){var f=document.querySelectorAll('#hist-figures figure');for(var i=0;i<f.length;i++){f[i].style.display=f[i].id===s.value?'':'none';}}" +
        "s.addEventListener('change',show);show();})();";

    private const string Css = """

        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#fff}
        header{padding:16px 24px 8px;border-bottom:1px solid #d8dde6;background:#f6f8fb}
        h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:0 0 8px;border-bottom:1px solid #e3e7ee;padding-bottom:4px}h3{font-size:15px;margin:14px 0 6px}
        main{padding:8px 24px 40px}section{margin:18px 0 28px}
        nav a{margin-right:14px;color:#1f5fbf;text-decoration:none}nav a.off{color:#8a93a3}
        code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#eef1f6;padding:0 3px;border-radius:3px}
        table{border-collapse:collapse;font-size:13px}th,td{border-bottom:1px solid #e6e9ef;padding:3px 8px;text-align:left;vertical-align:top}
        th{background:#f3f5f9;position:sticky;top:0}table.dense td{padding:2px 6px}
        .scroll{max-height:640px;overflow:auto;border:1px solid #e3e7ee}
        .not-run{color:#6b7385;font-style:italic}.note{color:#8a5a00}.bad{color:#b3261e;font-weight:600}
        .pass{color:#1b7f3b}.fail{color:#b3261e}tr.fail td{background:#fdf0ef}tr.changed td{background:#fffaf0}tr.flagged td{background:#fdf0ef}tr.chosen td{font-weight:600}
        .q{display:inline-block;padding:0 5px;border-radius:3px;font-size:12px;background:#eef1f6;color:#1d2330;white-space:nowrap}
        span.q-int8{background:#dbe8ff}span.q-int16{background:#eadcff}span.q-float16{background:#ffe6c7}span.q-float32{background:#e4e7ec}
        rect.q-int8,circle.q-int8{fill:#3d7be0}rect.q-int16,circle.q-int16{fill:#8a4fd8}rect.q-float16,circle.q-float16{fill:#e8892a}rect.q-float32,circle.q-float32{fill:#8a93a3}
        .src{font-size:12px;padding:0 4px;border-radius:3px;background:#eef1f6}.src-node_config,.src-subgraph_config{background:#dff3e4}.src-op_config{background:#e3ecff}
        .src-preset{background:#f0f0f0}.fallback{font-size:12px;color:#8a3d00}
        svg{display:block;max-width:100%;height:auto;margin:6px 0}
        svg text{font:11px system-ui,sans-serif;fill:#39414f}svg .axis{font-size:12px}svg .bar-label{fill:#fff;font-weight:600}
        .grid{stroke:#e8ebf0;stroke-width:1}.frame{fill:none;stroke:#aab2bf}
        .series{fill:none;stroke:#7f8ba0;stroke-width:1}.pt{stroke:#fff;stroke-width:.6}circle.flagged,rect.flagged{fill:#d93025}
        .bar{fill:#3d7be0}.hist-bar{fill:#5b8fe0}
        line.clip{stroke:#d93025;stroke-width:1.6;stroke-dasharray:6 3}line.range{stroke:#8a93a3;stroke-width:1.2}line.target{stroke:#1b7f3b;stroke-dasharray:5 3}
        text.clip{fill:#d93025}text.target{fill:#1b7f3b}text.best{fill:#b3261e;font-weight:600}
        .front{fill:none;stroke:#1b7f3b;stroke-width:1.5}circle.visited{fill:#b9c1cf}circle.meets{fill:#7fb08f}circle.pareto{fill:#1b7f3b}
        circle.baseline{fill:#fff;stroke:#39414f;stroke-width:2}circle.best{fill:#d93025;stroke:#fff;stroke-width:1.5}
        .clip-key{color:#d93025;font-weight:600}.range-key{color:#6b7385;font-weight:600}
        figure{margin:4px 0 14px}figcaption{font-size:12px;color:#4b5466}
        """;
}
