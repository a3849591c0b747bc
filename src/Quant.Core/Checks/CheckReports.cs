using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Xml;
using Quant.Core.Config;
using Quant.Core.Reports;
using Quant.Core.Stages;

namespace Quant.Core.Checks;

/// <summary>
/// The check stage's reports. All three are deterministic for the same inputs: no timestamps, no durations,
/// file names rather than absolute paths, numbers in shortest round-trip form.
/// </summary>
internal sealed class CheckReports(CheckResult result, CheckRequest request)
{
    public const string JsonFormat = "quant-build-check/1";

    private string Name => result.Measurements.Name;
    private int FailureCount => result.Outcomes.Count(o => !o.Passed);

    public string Json()
    {
        var m = result.Measurements;
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", JsonFormat);
            w.WriteString("name", Name);
            w.WriteString("model", Path.GetFileName(request.ModelPath));
            w.WriteString("qat_model", Path.GetFileName(request.QatModelPath));
            if (m.QuantizedModelPath is { } quantized) w.WriteString("quantized_model", Path.GetFileName(quantized));
            if (m.CompiledModelPath is { } compiled) w.WriteString("compiled_model", Path.GetFileName(compiled));
            w.WriteString("config", Path.GetFileName(request.ConfigPath));
            if (request.BaselinePath is { } b) w.WriteString("baseline", PackageBaselineSpec.Is(b) ? b : Path.GetFileName(b));
            else w.WriteNull("baseline");
            w.WriteNumber("samples", m.SampleCount);
            w.WriteBoolean("passed", result.Passed);
            w.WriteNumber("checks_total", result.Outcomes.Count);
            w.WriteNumber("checks_failed", FailureCount);
            w.WriteStartArray("checks");
            foreach (var o in result.Outcomes)
            {
                w.WriteStartObject();
                w.WriteString("kind", o.Kind.ToString().ToLowerInvariant());
                if (o.Rule is null) w.WriteNull("rule");
                else w.WriteString("rule", o.Rule);
                w.WriteString("stage", CheckNames.Of(o.Stage));
                if (o.Output.Length > 0) w.WriteString("output", o.Output);
                w.WriteString("metric", o.Metric);
                if (o.Aggregate is { } a) w.WriteString("over", CheckNames.Of(a));
                Checks.Json.Number(w, "value", o.Value);
                if (o.Kind == CheckKind.Baseline)
                {
                    Checks.Json.Number(w, "baseline", o.Limit);
                    Checks.Json.Number(w, "tolerance", o.Tolerance);
                    w.WriteString("better", o.Lower ? "higher" : "lower");
                }
                else
                {
                    Checks.Json.Number(w, o.Lower ? "min" : "max", o.Limit);
                }
                if (o.Kind == CheckKind.Default && o.DefaultBound == DefaultBoundKind.BitExact)
                    w.WriteString("default_bound", "bit_exact");
                else if (o.Kind == CheckKind.Default)
                {
                    Checks.Json.Number(w, "last_bit_floor", o.NoiseFloor);
                    w.WriteString("default_bound", o.DefaultBound == DefaultBoundKind.Stable ? "stable" : "fragile");
                }
                w.WriteBoolean("passed", o.Passed);
                w.WriteString("code", o.CodeText);
                w.WriteString("file", Path.GetFileName(o.Position.File));
                w.WriteNumber("line", o.Position.Line);
                w.WriteNumber("column", o.Position.Column);
                w.WriteString("message", o.Message);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (m.Runtime is { } rt)
            {
                w.WriteStartObject("runtime");
                w.WriteString("name", "onnxruntime");
                w.WriteString("version", rt.Version);
                w.WriteString("optimization", "all");
                w.WriteBoolean("measured", rt.Skipped is null);
                if (rt.Skipped is { } why) w.WriteString("skipped", why);
                w.WriteStartArray("last_bit_stability");
                foreach (var st in rt.Stability)
                {
                    w.WriteStartObject();
                    w.WriteString("output", st.Output);
                    Checks.Json.Number(w, "min_cosine", st.MinCosine);
                    Checks.Json.Number(w, "avg_cosine", st.AvgCosine);
                    w.WriteNumber("runs", st.Runs);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteStartObject("metrics");
            foreach (var (stage, table) in m.Similarity.OrderBy(s => s.Key))
            {
                w.WriteStartObject(CheckNames.Of(stage));
                w.WriteStartObject("outputs");
                foreach (var output in table.Outputs)
                {
                    w.WriteStartObject(output);
                    foreach (var (name, metric) in CheckNames.Metrics)
                    {
                        var s = table.Of(output, CheckStage.Metric(metric));
                        w.WriteStartObject(name);
                        Checks.Json.Number(w, "min", s.Min);
                        Checks.Json.Number(w, "avg", s.Avg);
                        Checks.Json.Number(w, "max", s.Max);
                        w.WriteEndObject();
                    }
                    w.WriteEndObject();
                }
                w.WriteEndObject();
                w.WriteStartObject("evaluators");
                if (m.Evaluators.TryGetValue(stage, out var values))
                    foreach (var (k, v) in values) Checks.Json.Number(w, k, v);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    /// <summary>JUnit XML as CI systems read it: one suite per model, one test case per check, a failure element per failing check.</summary>
    public string JUnit()
    {
        using var ms = new MemoryStream();
        var settings = new XmlWriterSettings { Indent = true, IndentChars = "  ", Encoding = new UTF8Encoding(false), NewLineChars = "\n" };
        using (var x = XmlWriter.Create(ms, settings))
        {
            x.WriteStartDocument();
            x.WriteStartElement("testsuites");
            x.WriteAttributeString("name", "quant-check");
            x.WriteAttributeString("tests", Count(result.Outcomes.Count));
            x.WriteAttributeString("failures", Count(FailureCount));
            x.WriteStartElement("testsuite");
            x.WriteAttributeString("name", Name);
            x.WriteAttributeString("tests", Count(result.Outcomes.Count));
            x.WriteAttributeString("failures", Count(FailureCount));
            x.WriteAttributeString("errors", "0");
            x.WriteAttributeString("skipped", "0");
            foreach (var o in result.Outcomes)
            {
                x.WriteStartElement("testcase");
                x.WriteAttributeString("classname", $"{Name}.{CheckNames.Of(o.Stage)}");
                x.WriteAttributeString("name", o.CaseName);
                if (!o.Passed)
                {
                    x.WriteStartElement("failure");
                    x.WriteAttributeString("type", o.CodeText);
                    x.WriteAttributeString("message", o.Message);
                    x.WriteString(o.Diagnostic(asWarning: false));
                    x.WriteEndElement();
                }
                x.WriteEndElement();
            }
            x.WriteEndElement();
            x.WriteEndElement();
            x.WriteEndDocument();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    public string Markdown()
    {
        var sb = new StringBuilder();
        int failed = FailureCount, total = result.Outcomes.Count;
        sb.Append($"### Quant.Build checks: {TextTable.Escape(Name)} — {(failed == 0 ? "passed" : "FAILED")} ({total - failed} of {total} passed, {result.Measurements.SampleCount} samples)\n\n");
        if (result.Measurements.Runtime is { Skipped: { } skipped })
            sb.Append($"runtime_vs_qat was not measured: {TextTable.Escape(skipped)}\n\n");
        if (total == 0)
        {
            sb.Append("No checks are configured (add a `checks:` section to the quantization config).\n");
            return sb.ToString();
        }
        var rows = result.Outcomes.Select(o => new[]
        {
            o.Passed ? "✅ pass" : "❌ **fail**", DefaultText(o) ?? o.Rule ?? "baseline",
            CheckNames.Of(o.Stage), o.Subject, Format.Number(o.Value), o.LimitText,
            o.Position.Line > 0 ? $"{Path.GetFileName(o.Position.File)}:{o.Position.Line}" : Path.GetFileName(o.Position.File),
        }).ToList();
        TextTable.Markdown(sb, ["result", "rule", "stage", "measured", "value", "bound", "where"], rows);
        return sb.ToString();
    }

    /// <summary>A default bound's rule column: what it rests on (the floor and which side of 0.9999 it is, or bit-exactness).</summary>
    private static string? DefaultText(CheckOutcome o) => o.Kind != CheckKind.Default ? null : o.DefaultBound switch
    {
        DefaultBoundKind.BitExact => "default (bit-exact)",
        DefaultBoundKind.Stable => $"default (last-bit floor {Format.Number(o.NoiseFloor)}: stable)",
        _ => $"default (last-bit floor {Format.Number(o.NoiseFloor)}: fragile)",
    };

    private static string Count(int n) => n.ToString(CultureInfo.InvariantCulture);
}
