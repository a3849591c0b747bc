using System.Text;
using System.Text.Json;
using Quant.Core.Precision;

namespace Quant.Core.Analysis.Sensitivity;

/// <summary>NAME.sweep.json (docs/sensitivity.md): deterministic, no timings, file names only.</summary>
public static class SweepReport
{
    public static string RenderJson(SweepResult sweep)
    {
        var s = sweep.Sensitivity;
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", "quant-sweep/1");
            w.WriteString("model", s.Model);
            w.WriteString("config", s.Config);
            w.WriteString("type", SensitivityOptions.Name(s.Type));
            w.WriteString("mode", SensitivityOptions.Name(s.Mode));
            w.WriteString("metric", SensitivityResult.MetricName(s.Metrics[0]));
            w.WriteString("to", PrecisionPlan.QTypeText(sweep.To));
            w.WriteNumber("samples", s.Samples);
            w.WriteNumber("candidates", s.Candidates.Count);
            if (sweep.EvaluatorMetric is null) w.WriteNull("evaluator_metric"); else w.WriteString("evaluator_metric", sweep.EvaluatorMetric);
            w.WriteStartArray("rows");
            foreach (var r in sweep.Rows)
            {
                w.WriteStartObject();
                if (r.Threshold is { } t) SensitivityResult.Number(w, "threshold", t); else w.WriteNull("threshold");
                w.WriteNumber("promoted", r.Candidates.Count);
                w.WriteNumber("share", r.Share);
                w.WriteStartArray("candidates");
                foreach (var c in r.Candidates) w.WriteStringValue(c);
                w.WriteEndArray();
                w.WriteStartArray("nodes");
                foreach (var n in r.Nodes) w.WriteStringValue(n);
                w.WriteEndArray();
                w.WriteStartObject("outputs");
                foreach (var o in s.Outputs)
                {
                    w.WriteStartObject(o);
                    foreach (var m in s.Metrics) SensitivityResult.Number(w, SensitivityResult.MetricName(m), r.Scores.Of(o, m));
                    w.WriteEndObject();
                }
                w.WriteEndObject();
                if (r.Evaluator is { } e && sweep.EvaluatorMetric is { } name)
                {
                    w.WriteStartObject("evaluator");
                    SensitivityResult.Number(w, name, e);
                    w.WriteEndObject();
                }
                else w.WriteNull("evaluator");
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }
}
