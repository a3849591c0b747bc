using System.Globalization;
using System.Text;
using System.Text.Json;
using Quant.Core.Calibration;
using Quant.Core.Export;
using Quant.Core.Precision;
using Quant.Onnx;

namespace Quant.Core.Reports;

/// <summary>
/// The model check's sections on what was done to weights and biases beyond plain quantization: error compensation
/// (<c>ec</c>, per node: the split and the weight error it leaves) and bias correction (per layer: the shift, the metric
/// before and after, whether it was kept).
/// </summary>
public sealed class WeightRefinementReport(OnnxModel prepared, PrecisionPlan plan, IReadOnlyDictionary<string, QuantParams> weights,
    BiasCorrection.Result? biasCorrection)
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>One compensated weight: relative weight error ‖w − ŵ‖/‖w‖ with the high part only and with both parts.</summary>
    public sealed record Compensated(string Node, string OpType, string Weight, string LowNode, double HighError, double SplitError);

    public IReadOnlyList<Compensated> ErrorCompensation() => plan.Nodes
        .SelectMany(n => n.Inputs.Where(i => i.ErrorCompensation).Select(i => (n, i)))
        .Where(x => weights.ContainsKey(x.i.Tensor) && prepared.Graph.Initializers.ContainsKey(x.i.Tensor))
        .Select(x =>
        {
            var split = Export.ErrorCompensation.Of(prepared.Graph.Initializers[x.i.Tensor], weights[x.i.Tensor], x.i.Tensor + "_split_low");
            return new Compensated(x.n.Name, x.n.OpType, x.i.Tensor, ErrorCompensationNames.LowNode(x.n.Name), split.HighError, split.SplitError);
        }).ToList();

    public void RenderText(StringBuilder sb)
    {
        sb.Append("\n== Error compensation (ec): int8 weights split into high + low int8 parts ==\n");
        var ec = ErrorCompensation();
        if (ec.Count == 0) sb.Append("none\n");
        else
            TextTable.Aligned(sb, ["node", "op", "weight", "low part", "weight error int8 -> ec"],
                ec.Select(e => new[] { e.Node, e.OpType, e.Weight, e.LowNode, $"{G(e.HighError)} -> {G(e.SplitError)}" }).ToList());

        sb.Append("\n== Bias correction ==\n");
        if (biasCorrection is not { } bc) { sb.Append("off\n"); return; }
        int kept = bc.Layers.Count(l => l.Applied);
        sb.Append($"{kept.ToString(Inv)} of {bc.Layers.Count.ToString(Inv)} layer(s) corrected: per output channel mean(float) - mean(qat) of the layer's ")
          .Append($"output, each layer on the float model's input, over {bc.Samples.ToString(Inv)} calibration sample(s); kept where it improves {bc.Metric}\n");
        TextTable.Aligned(sb, ["node", "op", "bias", "channels", "shift mean / max |.|", $"{bc.Metric} before -> after", "kept"],
            bc.Layers.Select(l => new[] { l.Node, l.OpType, l.Bias, l.Channels.ToString(Inv), $"{G(l.MeanAbsShift)} / {G(l.MaxAbsShift)}",
                $"{G(l.Before)} -> {G(l.After)}", l.Applied ? "yes" : "no" }).ToList());
        int limited = bc.Layers.Where(l => l.Applied).Sum(l => l.AtInt32Limit);
        if (limited > 0)
            sb.Append($"{limited.ToString(Inv)} channel(s) of kept layers left uncorrected: the corrected bias would not fit int32 at input scale x weight scale ")
              .Append("(layers: ").AppendJoin(", ", bc.Layers.Where(l => l.Applied && l.AtInt32Limit > 0).Select(l => $"{l.Node} {l.AtInt32Limit.ToString(Inv)}")).Append(")\n");
    }

    public void RenderJson(Utf8JsonWriter w)
    {
        w.WriteStartArray("error_compensation");
        foreach (var e in ErrorCompensation())
        {
            w.WriteStartObject(); w.WriteString("node", e.Node); w.WriteString("op_type", e.OpType); w.WriteString("weight", e.Weight);
            w.WriteString("low_node", e.LowNode); w.WriteNumber("weight_error_int8", Round(e.HighError)); w.WriteNumber("weight_error_ec", Round(e.SplitError));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (biasCorrection is not { } bc) { w.WriteNull("bias_correction"); return; }
        w.WriteStartObject("bias_correction");
        w.WriteString("metric", bc.Metric);
        w.WriteNumber("samples", bc.Samples);
        w.WriteStartArray("layers");
        foreach (var l in bc.Layers)
        {
            w.WriteStartObject(); w.WriteString("node", l.Node); w.WriteString("op_type", l.OpType); w.WriteString("bias", l.Bias);
            w.WriteNumber("channels", l.Channels); w.WriteNumber("mean_abs_shift", Round(l.MeanAbsShift)); w.WriteNumber("max_abs_shift", Round(l.MaxAbsShift));
            w.WriteNumber("before", Round(l.Before)); w.WriteNumber("after", Round(l.After)); w.WriteBoolean("applied", l.Applied);
            w.WriteNumber("channels_at_int32_limit", l.AtInt32Limit);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static string G(double v) => v.ToString("G6", Inv);
    private static double Round(double v) => double.IsFinite(v) ? Math.Round(v, 9) : 0;
}
