using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Quant.Core.Tuning;

/// <summary><c>NAME.tune.json</c> (format <c>quant-tune/1</c>, SCHEMAS.md): targets, baseline, best, every point visited.</summary>
public static class TuneReport
{
    public static string RenderJson(TuneResult r, string modelFile, string configFile)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", "quant-tune/1");
            w.WriteString("model", modelFile);
            w.WriteString("config", configFile);
            w.WriteStartArray("targets");
            foreach (var t in r.Targets)
            {
                w.WriteStartObject();
                w.WriteString("rule", t.Rule);
                if (t.Output is null) w.WriteNull("output"); else w.WriteString("output", t.Output);
                w.WriteString("metric", t.Metric);
                Number(w, "min", t.Min);
                Number(w, "max", t.Max);
                if (t.Similarity is not null) w.WriteString("over", Config.CheckNames.Of(t.Over)); else w.WriteNull("over");
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteBoolean("met", r.Met);
            w.WriteString("cost_model", TuneCost.Description);
            w.WriteStartObject("evaluation");
            w.WriteNumber("samples", r.EvaluationSamples);
            w.WriteString("data", r.EvaluationData);
            w.WriteEndObject();
            w.WriteNumber("candidate_nodes", r.CandidateNodes);
            w.WriteBoolean("stopped_by_budget", r.StoppedByBudget);
            w.WriteStartObject("float");
            Values(w, r.FloatValues);
            w.WriteEndObject();
            w.WriteStartObject("baseline");
            Number(w, "cost", r.Baseline.Cost);
            Values(w, r.Baseline.Values);
            w.WriteEndObject();
            w.WriteStartObject("best");
            Number(w, "cost", r.Best.Cost);
            Values(w, r.Best.Values);
            w.WriteString("config", Path.GetFileName(r.TunedConfigPath));
            w.WriteNumber("step", r.Best.Step);
            w.WriteStartArray("changes");
            foreach (var c in r.Best.Changes)
            {
                w.WriteStartObject();
                w.WriteString("node", c.Node);
                w.WriteString("op_type", c.OpType);
                w.WriteString("change", TuneCandidates.Of(c.Change));
                Number(w, "cost", c.Cost);
                if (c.Subgraph is { } b)
                {
                    // A branch promotion: the subgraph_config entry written and the nodes it covers.
                    w.WriteStartObject("subgraph");
                    w.WriteString("kind", b.IsSpan ? "span" : "cluster");
                    Strings(w, "inputs", b.Inputs);
                    Strings(w, "outputs", b.Outputs);
                    Strings(w, "nodes", b.Nodes);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartArray("visited");
            foreach (var p in r.Visited)
            {
                w.WriteStartObject();
                w.WriteNumber("step", p.Step);
                Number(w, "cost", p.Cost);
                Values(w, p.Values);
                w.WriteNumber("changes", p.Changes.Count);
                w.WriteBoolean("meets", p.Meets);
                w.WriteBoolean("pareto", p.Pareto);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    private static void Strings(Utf8JsonWriter w, string name, IEnumerable<string> items)
    {
        w.WriteStartArray(name);
        foreach (var i in items) w.WriteStringValue(i);
        w.WriteEndArray();
    }

    private static void Values(Utf8JsonWriter w, IReadOnlyDictionary<string, double> values)
    {
        w.WriteStartObject("values");
        foreach (var (k, v) in values.OrderBy(v => v.Key, StringComparer.Ordinal)) Number(w, k, v);
        w.WriteEndObject();
    }

    /// <summary>Round-trip digits; JSON has no infinity or NaN (an SQNR of identical outputs), so those are null.</summary>
    private static void Number(Utf8JsonWriter w, string name, double? x)
    {
        if (x is not { } v || !double.IsFinite(v)) { w.WriteNull(name); return; }
        w.WritePropertyName(name);
        w.WriteRawValue(v.ToString("R", CultureInfo.InvariantCulture));
    }
}
