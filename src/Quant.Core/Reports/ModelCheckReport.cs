using System.Globalization;
using System.Text;
using System.Text.Json;
using Quant.Core.Analysis;
using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.Passes;
using Quant.Core.Precision;
using Quant.Onnx;

namespace Quant.Core.Reports;

/// <summary>
/// <c>NAME.model_check.txt</c> / <c>.json</c>: what the export did to the model, in the order a
/// J6 user reads HMCT's model_check_result.txt — fallbacks, fusions, dead nodes, shared-module risks,
/// dtype statistics per op type, the per-layer table, and the change log. Deterministic: the same
/// export gives the same bytes.
/// </summary>
public sealed class ModelCheckReport(
    string name,
    OnnxModel original,
    PreparedModel prepared,
    PrecisionPlan plan,
    IReadOnlyDictionary<string, QuantParams> activations,
    IReadOnlyDictionary<string, QuantParams> weights,
    CalibrationStatistics stats,
    string chosenMethod,
    IReadOnlyList<(string Method, double Score)> candidates,
    SimilarityTable similarity,
    IReadOnlyList<LastBitStability.OutputStability> stability,
    IReadOnlyList<Int32BiasFit.Adjustment> biasFit,
    BiasCorrection.Result? biasCorrection = null)
{
    private readonly WeightRefinementReport _refinements = new(prepared.Model, plan, weights, biasCorrection);

    /// <summary>Consumers of one weight whose input ranges differ by more than this factor are flagged.</summary>
    public const double SharedRangeRatio = 4.0;

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <param name="Source">The config layer that decided the node's compute qtype before target rules ("preset base",
    /// "op_config Conv", "node_config", ...); a target rule's change is in the change log.</param>
    /// <param name="OutputTensor">The node's first output tensor ("" when it has none).</param>
    public sealed record Layer(string Node, string OpType, string Compute, IReadOnlyList<string> InputTypes, string OutputType,
        string Scales, string Method, string Axis, string Source = "", string OutputTensor = "");

    public sealed record SharedRisk(string Tensor, string Kind, IReadOnlyList<string> Consumers, string Detail);

    public IReadOnlyList<Layer> Layers() => plan.Nodes.Where(n => !n.ShapeOnly).Select(n =>
    {
        var inputs = n.Inputs.Select(i => i.Tensor.Length == 0 ? "-" : i.Role switch
        {
            InputRole.Activation => i.Fused ? "fused" : Text(i.QType),
            InputRole.Weight => Text(i.QType) + "(w)",
            InputRole.Bias => "float32(b)",
            _ => "param",
        }).ToList();
        var output = n.Outputs.Count == 0 ? "-" : Text(n.Outputs[0].QType);
        string scales = "", method = "", axis = "";
        var outTensor = n.Outputs.Count > 0 ? n.Outputs[0].Tensor : "";
        var weight = n.Inputs.FirstOrDefault(i => i.Role == InputRole.Weight && weights.ContainsKey(i.Tensor));
        if (activations.TryGetValue(outTensor, out var op)) { scales = ScaleText(op); method = op.Method; }
        else if (n.Inputs.FirstOrDefault(i => i.Role == InputRole.Activation && activations.ContainsKey(i.Tensor)) is { } ai)
        {
            var ip = activations[ai.Tensor];
            scales = "in " + ScaleText(ip);
            method = ip.Method;
        }
        if (weight is not null)
        {
            var wp = weights[weight.Tensor];
            axis = wp.Axis?.ToString(Inv) ?? "tensor";
            scales += (scales.Length > 0 ? "; " : "") + "w " + ScaleText(wp);
        }
        return new Layer(n.Name.Length > 0 ? n.Name : n.Node.Describe(), n.OpType, Text(n.Compute), inputs, output, scales, method, axis,
            n.Source, outTensor);
    }).ToList();

    public IReadOnlyList<SharedRisk> SharedRisks()
    {
        var risks = new List<SharedRisk>();
        var consumers = new Dictionary<string, List<(NodePrecision Node, InputPrecision Input)>>(StringComparer.Ordinal);
        foreach (var n in plan.Nodes)
            foreach (var i in n.Inputs)
                if (i.Tensor.Length > 0 && i.Role is InputRole.Weight or InputRole.Activation && i.QType is QType.Int8 or QType.Int16)
                {
                    if (!consumers.TryGetValue(i.Tensor, out var l)) consumers[i.Tensor] = l = [];
                    l.Add((n, i));
                }
        foreach (var (tensor, list) in consumers.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (list.Count < 2) continue;
            var names = list.Select(c => c.Node.Name).ToList();
            if (list[0].Input.Role == InputRole.Weight)
            {
                // A shared weight (a module reused at several places): the activations it meets may need different scales.
                var ranges = list.Select(c => c.Node.Inputs.FirstOrDefault(i => i.Role == InputRole.Activation && i.Tensor.Length > 0) is { } a
                    && stats.TryGet(a.Tensor, out var s) ? (double)s.AbsMax : double.NaN).ToList();
                var known = ranges.Where(r => !double.IsNaN(r) && r > 0).ToList();
                if (known.Count >= 2 && known.Max() / known.Min() > SharedRangeRatio)
                    risks.Add(new SharedRisk(tensor, "shared weight", names,
                        $"input ranges (absmax) {string.Join(", ", ranges.Select(r => Num(r)))} differ by {Num(known.Max() / known.Min())}x"));
            }
            else if (list.Select(c => c.Input.QType).Distinct().Count() > 1)
            {
                risks.Add(new SharedRisk(tensor, "mixed qtypes", names,
                    $"read as {string.Join(", ", list.Select(c => Text(c.Input.QType)))}; one scale serves all readers"));
            }
        }
        return risks;
    }

    /// <summary>Per op type: node count, and counts of compute/input/output dtypes.</summary>
    public IReadOnlyList<(string OpType, int Nodes, IReadOnlyDictionary<string, int> Inputs, IReadOnlyDictionary<string, int> Outputs)> DtypeStatistics()
    {
        string[] kinds = ["float32", "float16", "int8", "int16"];
        return plan.Nodes.Where(n => !n.ShapeOnly).GroupBy(n => n.OpType).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g =>
        {
            var ins = kinds.ToDictionary(k => k, _ => 0);
            var outs = kinds.ToDictionary(k => k, _ => 0);
            foreach (var n in g)
            {
                foreach (var i in n.Inputs.Where(i => i.Role is InputRole.Activation or InputRole.Weight && i.QType is not null))
                    ins[Text(i.QType)]++;
                foreach (var o in n.Outputs.Where(o => o.QType is not null)) outs[Text(o.QType)]++;
            }
            return (g.Key, g.Count(), (IReadOnlyDictionary<string, int>)ins, (IReadOnlyDictionary<string, int>)outs);
        }).ToList();
    }

    public IReadOnlyList<NodePrecision> FloatFallbacks() =>
        plan.Nodes.Where(n => !n.ShapeOnly && n.Compute is QType.Float32 or QType.Float16
            && plan.ChangeLog.Any(c => c.NodeName == n.Name && c.Site == ChangeSite.Node)).ToList();

    public string RenderText()
    {
        var sb = new StringBuilder();
        var counts = plan.CountByQType();
        sb.Append("Quant.Build model check: ").Append(name).Append('\n');
        sb.Append("model: ").Append(original.Graph.Nodes.Count.ToString(Inv)).Append(" nodes (")
          .Append(prepared.Model.Graph.Nodes.Count.ToString(Inv)).Append(" after preparation), opset ")
          .Append(original.OpsetFor("").ToString(Inv)).Append('\n');
        sb.Append("precision: ").Append(string.Join(", ", counts.Select(kv => $"{Text(kv.Key)} {kv.Value.ToString(Inv)}"))).Append('\n');
        sb.Append("calibration: ").Append(chosenMethod);
        if (candidates.Count > 1)
            sb.Append(" (chosen by the worst output's pooled cosine vs float on the scored calibration samples, held out from the statistics when there are 16 or more: ")
              .Append(string.Join(", ", candidates.Select(c => $"{c.Method} {c.Score.ToString("F6", Inv)}"))).Append(')');
        sb.Append('\n');

        Section(sb, "Unsupported ops and float fallbacks");
        var fallbacks = FloatFallbacks();
        if (fallbacks.Count == 0) sb.Append("none\n");
        foreach (var n in fallbacks)
        {
            var why = plan.ChangeLog.First(c => c.NodeName == n.Name && c.Site == ChangeSite.Node);
            sb.Append($"{n.Name} ({n.OpType}): {Text(why.From)} -> {Text(why.To)}: {why.Reason}\n");
        }

        Section(sb, "Fusions");
        if (prepared.Fusions.Count == 0) sb.Append("none\n");
        foreach (var f in prepared.Fusions) sb.Append(f).Append('\n');
        if (prepared.Folds.Count > 0)
        {
            sb.Append("batch normalization:\n");
            foreach (var f in prepared.Folds) sb.Append("  ").Append(f).Append('\n');
        }
        if (prepared.Composites.Count > 0)
        {
            sb.Append("composite ops written out in smaller ops:\n");
            foreach (var c in prepared.Composites) sb.Append("  ").Append(c).Append('\n');
        }
        if (prepared.Equalizations.Count > 0)
        {
            sb.Append("cross-layer equalization:\n");
            foreach (var e in prepared.Equalizations) sb.Append("  ").Append(e).Append('\n');
        }

        Section(sb, "Dead and removed nodes");
        if (prepared.DeadNodes.Count == 0 && prepared.RemovedNodes.Count == 0) sb.Append("none\n");
        foreach (var d in prepared.DeadNodes) sb.Append("dead: ").Append(d).Append('\n');
        // Constant nodes becoming initializers is routine (Paddle exports keep every weight in one): count them.
        int constants = prepared.RemovedNodes.Count(r => r.OpType == "Constant");
        if (constants > 0) sb.Append($"{constants.ToString(Inv)} Constant node(s) became initializers\n");
        foreach (var r in prepared.RemovedNodes.Where(r => r.OpType != "Constant")) sb.Append("removed: ").Append(r).Append('\n');

        Section(sb, "Shared tensors with different ranges (shared-module risk)");
        var risks = SharedRisks();
        if (risks.Count == 0) sb.Append("none\n");
        foreach (var r in risks) sb.Append($"{r.Tensor} ({r.Kind}) read by {string.Join(", ", r.Consumers)}: {r.Detail}\n");

        Section(sb, "Weight scales raised so the bias fits int32 at input scale x weight scale");
        if (biasFit.Count == 0) sb.Append("none\n");
        foreach (var a in biasFit)
            sb.Append($"{a.Node}: {a.Weight}, {a.Channels.ToString(Inv)} channel(s), scale up to {a.LargestFactor.ToString("G4", Inv)}x\n");

        _refinements.RenderText(sb);

        Section(sb, "Input/output dtypes per op type");
        var dt = DtypeStatistics();
        var rows = dt.Select(d => new[] { d.OpType, d.Nodes.ToString(Inv),
            Counts(d.Inputs), Counts(d.Outputs) }).ToList();
        TextTable.Aligned(sb, ["op type", "nodes", "inputs (float32/float16/int8/int16)", "outputs (float32/float16/int8/int16)"], rows);

        Section(sb, "Layers");
        TextTable.Aligned(sb, ["node", "op", "compute", "inputs", "output", "scales", "method", "weight axis"],
            Layers().Select(l => new[] { l.Node, l.OpType, l.Compute, string.Join(",", l.InputTypes), l.OutputType, l.Scales, l.Method, l.Axis }).ToList());

        Section(sb, "Output similarity, float vs qat (min / avg / max over calibration samples)");
        var simRows = new List<string[]>();
        foreach (var o in similarity.Outputs)
        {
            simRows.Add([o, "cosine", Spread(similarity.Of(o, s => s.Cosine))]);
            simRows.Add([o, "L1", Spread(similarity.Of(o, s => s.L1))]);
            simRows.Add([o, "L2", Spread(similarity.Of(o, s => s.L2))]);
            simRows.Add([o, "Chebyshev", Spread(similarity.Of(o, s => s.Chebyshev))]);
        }
        TextTable.Aligned(sb, ["output", "metric", "min / avg / max"], simRows);

        Section(sb, "Last-bit stability, qat vs qat with last-bit float noise (first calibration sample)");
        sb.Append("Outputs of runs in which every Conv/MatMul/pooling/reduction/Softmax/Sigmoid output was disturbed by up to\n")
          .Append("+-1 ulp of its largest value, against a clean run. Runtimes that sum in another order or round biases to\n")
          .Append("int32 (ONNX Runtime, hardware) disagree about this much\n")
          .Append("on this qat model; below 0.9999 the quantization is fragile, whatever runs it.\n");
        TextTable.Aligned(sb, ["output", "runs", "cosine min / avg"],
            stability.Select(s => new[] { s.Output, s.Runs.ToString(Inv), $"{s.MinCosine.ToString("G6", Inv)} / {s.AvgCosine.ToString("G6", Inv)}" }).ToList());

        Section(sb, "Change log");
        sb.Append(plan.RenderChangeLog());
        return sb.ToString();
    }

    public string RenderJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("model", name);
            w.WriteString("calibration_method", chosenMethod);
            w.WriteStartArray("calibration_candidates");
            foreach (var (m, s) in candidates) { w.WriteStartObject(); w.WriteString("method", m); w.WriteNumber("score", Round(s)); w.WriteEndObject(); }
            w.WriteEndArray();
            w.WriteStartObject("precision_counts");
            foreach (var (t, c) in plan.CountByQType()) w.WriteNumber(Text(t), c);
            w.WriteEndObject();
            w.WriteStartArray("float_fallbacks");
            foreach (var n in FloatFallbacks())
            {
                var why = plan.ChangeLog.First(c => c.NodeName == n.Name && c.Site == ChangeSite.Node);
                w.WriteStartObject(); w.WriteString("node", n.Name); w.WriteString("op_type", n.OpType); w.WriteString("to", Text(why.To)); w.WriteString("reason", why.Reason); w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("fusions");
            foreach (var f in prepared.Fusions)
            {
                w.WriteStartObject(); w.WriteString("producer", f.ProducerNode); w.WriteString("activation", f.Activation);
                w.WriteStartArray("activation_nodes"); foreach (var a in f.ActivationNodes) w.WriteStringValue(a); w.WriteEndArray();
                w.WriteBoolean("fused", f.Fused); w.WriteString("reason", f.Reason); w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("composite_ops");
            foreach (var c in prepared.Composites)
            {
                w.WriteStartObject(); w.WriteString("node", c.Node); w.WriteString("op_type", c.OpType);
                w.WriteStartArray("from_nodes"); foreach (var n in c.FromNodes) w.WriteStringValue(n); w.WriteEndArray();
                w.WriteString("input", c.Input); w.WriteString("output", c.Output);
                w.WriteBoolean("fused", c.Fused); w.WriteString("reason", c.Reason); w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("equalization");
            foreach (var e in prepared.Equalizations)
            {
                w.WriteStartObject(); w.WriteString("first", e.First); w.WriteString("activation", e.Activation); w.WriteString("second", e.Second);
                w.WriteBoolean("equalized", e.Equalized); w.WriteString("reason", e.Reason);
                if (e.Equalized)
                {
                    w.WriteNumber("imbalance_before", Round(e.ImbalanceBefore)); w.WriteNumber("imbalance_after", Round(e.ImbalanceAfter));
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("dead_nodes");
            foreach (var d in prepared.DeadNodes) w.WriteStringValue(d.Label);
            w.WriteEndArray();
            w.WriteStartArray("shared_risks");
            foreach (var r in SharedRisks())
            {
                w.WriteStartObject(); w.WriteString("tensor", r.Tensor); w.WriteString("kind", r.Kind);
                w.WriteStartArray("consumers"); foreach (var c in r.Consumers) w.WriteStringValue(c); w.WriteEndArray();
                w.WriteString("detail", r.Detail); w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("bias_fit");
            foreach (var a in biasFit)
            {
                w.WriteStartObject(); w.WriteString("node", a.Node); w.WriteString("weight", a.Weight);
                w.WriteNumber("channels", a.Channels); w.WriteNumber("largest_factor", Round(a.LargestFactor)); w.WriteEndObject();
            }
            w.WriteEndArray();
            _refinements.RenderJson(w);
            w.WriteStartArray("layers");
            foreach (var l in Layers())
            {
                w.WriteStartObject(); w.WriteString("node", l.Node); w.WriteString("op_type", l.OpType); w.WriteString("compute", l.Compute);
                w.WriteStartArray("inputs"); foreach (var i in l.InputTypes) w.WriteStringValue(i); w.WriteEndArray();
                w.WriteString("output", l.OutputType); w.WriteString("scales", l.Scales); w.WriteString("method", l.Method); w.WriteString("weight_axis", l.Axis);
                w.WriteString("source", l.Source); w.WriteString("output_tensor", l.OutputTensor);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            WriteActivations(w);
            w.WriteStartArray("similarity");
            foreach (var o in similarity.Outputs)
            {
                w.WriteStartObject(); w.WriteString("output", o);
                foreach (var (metric, f) in new (string, Func<Similarity, double>)[] { ("cosine", s => s.Cosine), ("l1", s => s.L1), ("l2", s => s.L2), ("chebyshev", s => s.Chebyshev) })
                {
                    var sp = similarity.Of(o, f);
                    w.WriteStartObject(metric); w.WriteNumber("min", Round(sp.Min)); w.WriteNumber("avg", Round(sp.Avg)); w.WriteNumber("max", Round(sp.Max)); w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("last_bit_stability");
            foreach (var st in stability)
            {
                w.WriteStartObject(); w.WriteString("output", st.Output); w.WriteNumber("runs", st.Runs);
                w.WriteNumber("min_cosine", Round(st.MinCosine)); w.WriteNumber("avg_cosine", Round(st.AvgCosine)); w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("change_log");
            foreach (var c in plan.ChangeLog)
            {
                w.WriteStartObject(); w.WriteString("node", c.NodeName); w.WriteString("op_type", c.OpType); w.WriteString("where", c.SiteText);
                w.WriteString("from", Text(c.From)); w.WriteString("to", Text(c.To)); w.WriteString("reason", c.Reason); w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray()) + "\n";
    }

    /// <summary>
    /// Every activation tensor the qat model quantizes (a Q/DQ pair: read as int8/int16 by a node that is not fused to
    /// its producer, or an int8/int16 model output) with its exact scale and the float range it keeps (the clipping
    /// range, scale x (qmin - zp) .. scale x (qmax - zp)): what the HTML report marks on the calibration histograms.
    /// Calibrated tensors without a Q/DQ (a GEMM output fused with its activation) are left out.
    /// </summary>
    private void WriteActivations(Utf8JsonWriter w)
    {
        var quantized = new HashSet<string>(StringComparer.Ordinal);
        var graphOutputs = plan.Model.Graph.Outputs.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var n in plan.Nodes.Where(n => !n.ShapeOnly))
        {
            foreach (var i in n.Inputs)
                if (i.Role == InputRole.Activation && !i.Fused && i.QType is QType.Int8 or QType.Int16 && i.Tensor.Length > 0) quantized.Add(i.Tensor);
            foreach (var o in n.Outputs)
                if (o.QType is QType.Int8 or QType.Int16 && graphOutputs.Contains(o.Tensor)) quantized.Add(o.Tensor);
        }
        w.WriteStartArray("activations");
        foreach (var (tensor, p) in activations.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!quantized.Contains(tensor) || p.QType is not (QType.Int8 or QType.Int16) || p.Scales.Length == 0) continue;
            var (qmin, qmax) = QuantParams.Range(p.QType);
            double lo = double.PositiveInfinity, hi = double.NegativeInfinity;
            for (int c = 0; c < p.Scales.Length; c++)
            {
                int zp = p.ZeroPoints.Length == 0 ? 0 : p.ZeroPoints[Math.Min(c, p.ZeroPoints.Length - 1)];
                lo = Math.Min(lo, (double)p.Scales[c] * (qmin - zp));
                hi = Math.Max(hi, (double)p.Scales[c] * (qmax - zp));
            }
            w.WriteStartObject(); w.WriteString("tensor", tensor); w.WriteString("qtype", Text(p.QType));
            // float scales as written into the model: their shortest round-trip text, not rounded to 9 digits.
            if (p.Scales.Length == 1) w.WriteNumber("scale", p.Scales[0]); else w.WriteNull("scale");
            w.WriteNumber("zero_point", p.ZeroPoints.Length == 0 ? 0 : p.ZeroPoints[0]);
            w.WriteNumber("channels", p.Scales.Length);
            w.WriteString("method", p.Method);
            w.WriteNumber("clip_min", lo); w.WriteNumber("clip_max", hi);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    private static double Round(double v) => double.IsFinite(v) ? Math.Round(v, 9) : 0;
    private static string Text(QType? t) => t is null ? "-" : PrecisionPlan.QTypeText(t.Value);
    private static string Num(double v) => v.ToString("G4", Inv);
    private static string Spread(Spread s) => $"{s.Min.ToString("G6", Inv)} / {s.Avg.ToString("G6", Inv)} / {s.Max.ToString("G6", Inv)}";
    private static string Counts(IReadOnlyDictionary<string, int> c) =>
        $"{c["float32"].ToString(Inv)}/{c["float16"].ToString(Inv)}/{c["int8"].ToString(Inv)}/{c["int16"].ToString(Inv)}";

    private static string ScaleText(QuantParams p) => p.Scales.Length == 1
        ? p.Scales[0].ToString("G6", Inv) + (p.ZeroPoints.Length > 0 && p.ZeroPoints[0] != 0 ? $" zp {p.ZeroPoints[0].ToString(Inv)}" : "")
        : $"{p.Scales.Length.ToString(Inv)} ch [{p.Scales.Min().ToString("G4", Inv)}..{p.Scales.Max().ToString("G4", Inv)}]";

    private static void Section(StringBuilder sb, string title) => sb.Append('\n').Append("== ").Append(title).Append(" ==\n");
}
