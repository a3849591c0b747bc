using System.Globalization;
using System.Text;
using System.Text.Json;
using Quant.Core.Config;

namespace Quant.Core.Analysis.Sensitivity;

/// <summary>One candidate's scores: per scored output, and over them the worst output's value of each metric.</summary>
public sealed class CandidateScore
{
    public required SensitivityCandidateInfo Candidate { get; init; }
    public required OutputScores Scores { get; init; }
    /// <summary>Nodes the candidate's small model re-ran per sample before the downstream cone (0 when it changes nothing).</summary>
    public int LocalNodes { get; init; }
    public string Name => Candidate.Name;
    public double Worst(CheckMetric metric) => Scores.Worst(metric);
    public double Of(string output, CheckMetric metric) => Scores.Of(output, metric);
}

/// <summary>
/// What <see cref="NodeSensitivity"/> measured. <see cref="Candidates"/> are ranked by the first metric, most
/// sensitive first: in mode alone the worst score first (quantizing it alone hurts most), in mode restore the best
/// score first (restoring it to float helps most); ties keep graph order.
/// </summary>
public sealed class SensitivityResult
{
    public required string Model { get; init; }
    public required string Config { get; init; }
    public required CandidateType Type { get; init; }
    public required SensitivityMode Mode { get; init; }
    public required int Samples { get; init; }
    public required IReadOnlyList<string> Outputs { get; init; }
    public required IReadOnlyList<CheckMetric> Metrics { get; init; }
    public required IReadOnlyList<CandidateScore> Candidates { get; init; }
    /// <summary>The base model's scores: the float model (alone: 1/0 everywhere) or the model quantized as configured (restore).</summary>
    public required OutputScores Baseline { get; init; }
    /// <summary>Notes on what the scores do not include (e.g. bias correction), one sentence each.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
    /// <summary>Wall time per candidate (scoring only; console, never in files).</summary>
    public double SecondsPerCandidate { get; init; }
    /// <summary>Seconds from the start of scoring to the first candidate's complete score (console only).</summary>
    public double SecondsToFirstResult { get; init; }
    /// <summary>Seconds for the base runs that every candidate reuses (console only).</summary>
    public double SecondsForBaseRuns { get; init; }
    /// <summary>Of the scoring time: building the candidates' small models, and re-running (small model + downstream cone) on every sample (console only).</summary>
    public double SecondsBuildingVariants { get; init; }
    public double SecondsRerunning { get; init; }

    public static string MetricName(CheckMetric m) => CheckNames.Of(m);

    /// <summary>Candidates ranked for <paramref name="mode"/> by <paramref name="metric"/> (see the class summary).</summary>
    public static List<CandidateScore> Rank(IEnumerable<CandidateScore> scores, SensitivityMode mode, CheckMetric metric)
    {
        bool worstFirst = mode == SensitivityMode.Alone;
        bool higherBetter = CheckNames.HigherIsBetter(metric);
        // Ascending when the first in line has the lowest value: alone + cosine, restore + mse.
        bool ascending = worstFirst == higherBetter;
        static double Key(double v) => double.IsNaN(v) ? double.NegativeInfinity : v;
        return ascending
            ? scores.OrderBy(s => Key(s.Worst(metric))).ToList()
            : scores.OrderByDescending(s => Key(s.Worst(metric))).ToList();
    }

    /// <summary>NAME.sensitivity.json (docs/sensitivity.md): deterministic, no timings, file names only.</summary>
    public string RenderJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", "quant-sensitivity/1");
            w.WriteString("model", Model);
            w.WriteString("config", Config);
            w.WriteString("type", SensitivityOptions.Name(Type));
            w.WriteString("mode", SensitivityOptions.Name(Mode));
            w.WriteString("order", Mode == SensitivityMode.Alone ? "worst first" : "best first (restoring helps most)");
            w.WriteNumber("samples", Samples);
            w.WriteStartArray("outputs");
            foreach (var o in Outputs) w.WriteStringValue(o);
            w.WriteEndArray();
            w.WriteStartArray("metrics");
            foreach (var m in Metrics) w.WriteStringValue(MetricName(m));
            w.WriteEndArray();
            w.WriteStartObject("baseline");
            WriteScores(w, Baseline);
            w.WriteEndObject();
            w.WriteStartArray("notes");
            foreach (var n in Notes) w.WriteStringValue(n);
            w.WriteEndArray();
            w.WriteStartArray("candidates");
            foreach (var c in Candidates)
            {
                w.WriteStartObject();
                w.WriteString("name", c.Candidate.Name);
                w.WriteString("node", c.Candidate.Node);
                w.WriteString("op_type", c.Candidate.OpType);
                w.WriteString("qtype", c.Candidate.QType);
                w.WriteStartArray("nodes");
                foreach (var n in c.Candidate.Nodes) w.WriteStringValue(n);
                w.WriteEndArray();
                w.WriteStartObject("metrics");
                foreach (var m in Metrics) Number(w, MetricName(m), c.Worst(m));
                w.WriteEndObject();
                w.WriteStartObject("outputs");
                WriteScores(w, c.Scores);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    private void WriteScores(Utf8JsonWriter w, OutputScores scores)
    {
        foreach (var o in Outputs)
        {
            w.WriteStartObject(o);
            foreach (var m in Metrics) Number(w, MetricName(m), scores.Of(o, m));
            w.WriteEndObject();
        }
    }

    /// <summary>A finite number as it is (shortest round-trip form); NaN and infinity (SQNR of identical outputs) as null.</summary>
    internal static void Number(Utf8JsonWriter w, string name, double v)
    {
        if (double.IsFinite(v)) w.WriteNumber(name, v);
        else w.WriteNull(name);
    }

    /// <summary>NAME.sensitivity.csv: one row per candidate in rank order, the worst output's value of each metric.</summary>
    public string RenderCsv()
    {
        var sb = new StringBuilder();
        sb.Append("name,node,op_type,qtype");
        foreach (var m in Metrics) sb.Append(',').Append(MetricName(m));
        sb.Append('\n');
        foreach (var c in Candidates)
        {
            sb.Append(Csv(c.Candidate.Name)).Append(',').Append(Csv(c.Candidate.Node)).Append(',').Append(Csv(c.Candidate.OpType)).Append(',').Append(c.Candidate.QType);
            foreach (var m in Metrics) sb.Append(',').Append(Format(c.Worst(m)));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>Round-trip invariant text; <c>inf</c>/<c>nan</c> for the non-finite.</summary>
    public static string Format(double v) =>
        double.IsNaN(v) ? "nan" : double.IsPositiveInfinity(v) ? "inf" : double.IsNegativeInfinity(v) ? "-inf" : v.ToString("R", CultureInfo.InvariantCulture);

    private static string Csv(string cell) =>
        cell.IndexOfAny([',', '"', '\n', '\r']) < 0 ? cell : "\"" + cell.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
