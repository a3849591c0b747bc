using System.Globalization;
using System.Text;
using System.Text.Json;
using Quant.Core.Calibration;
using Quant.Core.Checks;
using Quant.Core.Precision;
using Quant.Core.Reports;

namespace Quant.Core.Analysis.Compare;

/// <summary>
/// NAME.compare.json (format quant-compare/1, keys agreed in the issue's SCHEMAS) and NAME.compare.txt: the same
/// content for tools and for people. Deterministic: numbers round-trip ("R") in JSON and fixed digits in text, file
/// names only, no timestamps.
/// </summary>
public sealed class CompareReport(CompareResult r, string qatFile)
{
    public const string JsonFormat = "quant-compare/1";

    public string Json()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", JsonFormat);
            w.WriteString("model", r.ModelFile);
            w.WriteString("qat_model", qatFile);
            w.WriteString("reference", "float");
            w.WriteString("actual", "qat");
            w.WriteStartArray("stages");
            foreach (var s in r.Stages) w.WriteStringValue(s.Name());
            w.WriteEndArray();
            w.WriteNumber("samples", r.Samples);
            w.WriteStartArray("tensors");
            for (int i = 0; i < r.Tensors.Count; i++) WriteTensor(w, r.Tensors[i], r.Results[i], r.Flags[i]);
            w.WriteEndArray();
            w.WriteStartArray("unmatched");
            foreach (var u in r.Unmatched) w.WriteStringValue(u);
            w.WriteEndArray();
            w.WritePropertyName("first_nonfinite");
            if (r.NonFinite.Count == 0) w.WriteNullValue();
            else WriteOrigin(w, r.NonFinite[0]);
            w.WriteStartArray("nonfinite");
            foreach (var o in r.NonFinite) WriteOrigin(w, o);
            w.WriteEndArray();
            w.WriteStartArray("findings");
            foreach (var f in r.Findings)
            {
                w.WriteStartObject();
                w.WriteString("flag", f.Flag);
                NullableString(w, "node", f.Node);
                NullableString(w, "tensor", f.Tensor);
                w.WriteString("message", f.Message);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    private static void WriteTensor(Utf8JsonWriter w, MatchedTensor t, TensorResult res, IReadOnlyList<string> flags)
    {
        w.WriteStartObject();
        w.WriteString("tensor", t.Tensor);
        NullableString(w, "node", t.Node);
        NullableString(w, "op_type", t.OpType);
        NullableString(w, "qtype", t.QType is { } q ? PrecisionPlan.QTypeText(q) : null);
        w.WriteString("qat_value", t.Qat);
        var sim = res.Similarity;
        Checks.Json.Number(w, "cosine", sim.Cosine);
        Checks.Json.Number(w, "sqnr", sim.Sqnr);
        Stats(w, "reference", res.Reference);
        Stats(w, "actual", res.Qat.Actual);
        w.WritePropertyName("scale");
        if (t.Scale is { } s) Checks.Json.Number(w, s); else w.WriteNullValue();
        w.WritePropertyName("clipped");
        if (res.Quantization is { } c) Checks.Json.Number(w, c.ClippedShare); else w.WriteNullValue();
        w.WritePropertyName("quantization_sqnr");
        if (res.Quantization is { } n) Checks.Json.Number(w, n.Sqnr); else w.WriteNullValue();
        w.WriteStartArray("flags");
        foreach (var f in flags) w.WriteStringValue(f);
        w.WriteEndArray();
        if (res.Later.Count > 0)
        {
            w.WriteStartObject("later");
            foreach (var (stage, sr) in res.Later.OrderBy(kv => kv.Key))
            {
                w.WriteStartObject(stage.Name());
                w.WriteString("value", sr.Value);
                Checks.Json.Number(w, "cosine", sr.Similarity.Cosine);
                Checks.Json.Number(w, "sqnr", sr.Similarity.Sqnr);
                Stats(w, "actual", sr.Actual);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private static void Stats(Utf8JsonWriter w, string name, ValueStatistics s)
    {
        w.WritePropertyName(name);
        if (s.Count == 0) { w.WriteNullValue(); return; }
        w.WriteStartObject();
        Checks.Json.Number(w, "min", s.Min);
        Checks.Json.Number(w, "max", s.Max);
        Checks.Json.Number(w, "mean", s.Mean);
        Checks.Json.Number(w, "std", s.Std);
        if (s.NonFinite > 0) w.WriteNumber("nonfinite", s.NonFinite);
        w.WriteEndObject();
    }

    private static void WriteOrigin(Utf8JsonWriter w, NonFiniteOrigin o)
    {
        w.WriteStartObject();
        w.WriteString("stage", o.Stage.Name());
        NullableString(w, "node", o.Node.Length > 0 ? o.Node : null);
        w.WriteString("op_type", o.OpType);
        w.WriteString("tensor", o.Tensor);
        w.WriteString("kind", o.Kind);
        w.WriteNumber("sample", o.Sample);
        w.WriteEndObject();
    }

    private static void NullableString(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null) w.WriteNull(name);
        else w.WriteString(name, value);
    }

    /// <summary>The tensor table's head and rows (the text file's, and the console's for its worst rows).</summary>
    public static IReadOnlyList<string> Head(IReadOnlyList<CompareStage> stages) =>
        ["tensor", "node", "op", "qtype", "cosine", "sqnr", "float min", "float max", "qat min", "qat max", "scale", "clipped", "quant sqnr",
         .. stages.Skip(2).Select(s => s.Name() + " cosine"), "flags"];

    public static IReadOnlyList<string> Row(CompareResult r, int i)
    {
        var (t, res) = (r.Tensors[i], r.Results[i]);
        return [t.Tensor, t.Node ?? "(input)", t.OpType ?? "", t.QType is { } q ? PrecisionPlan.QTypeText(q) : "float32",
            F(res.Similarity.Cosine, "F6"), F(res.Similarity.Sqnr, "F2"),
            G(res.Reference.Count > 0 ? res.Reference.Min : double.NaN), G(res.Reference.Count > 0 ? res.Reference.Max : double.NaN),
            G(res.Qat.Actual.Count > 0 ? res.Qat.Actual.Min : double.NaN), G(res.Qat.Actual.Count > 0 ? res.Qat.Actual.Max : double.NaN),
            t.Scale is { } s ? G(s) : "-", res.Quantization is { } c ? F(100 * c.ClippedShare, "F2") + "%" : "-",
            res.Quantization is { } n ? F(n.Sqnr, "F2") : "-",
            .. r.Stages.Skip(2).Select(st => res.Later.TryGetValue(st, out var sr) ? F(sr.Similarity.Cosine, "F6") : "-"),
            string.Join(",", r.Flags[i])];
    }

    /// <summary>Indices of the tensors, worst qat cosine first (NaN first), graph order among equals.</summary>
    public static IReadOnlyList<int> Worst(CompareResult r) =>
        Enumerable.Range(0, r.Tensors.Count).OrderBy(i => double.IsNaN(r.Results[i].Similarity.Cosine) ? double.NegativeInfinity : r.Results[i].Similarity.Cosine)
            .ThenBy(i => i).ToList();

    public string Text()
    {
        var sb = new StringBuilder();
        sb.Append($"layer-wise comparison of {r.ModelFile} (float, reference) with {string.Join(", ", r.Stages.Skip(1).Select(s => s.Name()))} over {r.Samples} samples\n");
        sb.Append($"{r.Tensors.Count} tensors matched");
        if (r.Unmatched.Count > 0) sb.Append($"; {r.Unmatched.Count} float tensors not in the qat model: {string.Join(", ", r.Unmatched)}");
        sb.Append("\n\n");
        TextTable.Aligned(sb, Head(r.Stages), Enumerable.Range(0, r.Tensors.Count).Select(i => Row(r, i)).ToList());
        sb.Append('\n');
        if (r.NonFinite.Count > 0)
        {
            sb.Append("first non-finite values:\n");
            foreach (var o in r.NonFinite)
                sb.Append($"  {o.Stage.Name()}: {(o.Node.Length > 0 ? $"{o.OpType} '{o.Node}'" : "model input")} -> '{o.Tensor}' ({o.Kind}, sample {o.Sample})\n");
            sb.Append('\n');
        }
        sb.Append(r.Findings.Count == 0 ? "findings: none\n" : $"findings ({r.Findings.Count}):\n");
        foreach (var f in r.Findings) sb.Append($"  [{f.Flag}] {f.Message}\n");
        return sb.ToString();
    }

    internal static string F(double x, string format) => double.IsNaN(x) ? "nan" : double.IsPositiveInfinity(x) ? "inf" : double.IsNegativeInfinity(x) ? "-inf" : x.ToString(format, CultureInfo.InvariantCulture);
    internal static string G(double x) => F(x, "G6");
}
