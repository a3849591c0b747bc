using Quant.Core.Diagnostics;
using Quant.Engine.Kernels;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// What the four GEMM-type rules (Conv, ConvTranspose, MatMul, Gemm; docs/quantization-spec.md §4) share: the weight
/// checks of §3.2/§3.3 (symmetric, per channel along the output channels), the int32 bias of §4.2, the per-channel
/// multipliers M_m = s_x·s_w[m]/s_y (§4.4), the fused Relu/Clip bounds Q_T(lo), Q_T(hi), the accumulator-width proof
/// of §4.3, and writing the node: one <c>quant.build</c> node per output format, each computing from the accumulator
/// (the multi-format case could share one accumulator through QRequantize; one node per format gives the same bits).
/// </summary>
internal static class GemmLowering
{
    /// <summary>The weight integers, widened, plus their per-output-channel scale lookup.</summary>
    internal sealed record Weights(int[] Values, long[] Dims, IntegerInput Input);

    public static QuantException Error(LoweringRequest r, ErrorCode code, string message) => ConvertErrors.At(r.ModelFile, code, message);

    /// <summary>
    /// The integer weights of <paramref name="w"/>, checked: int8/int16, zero points 0 (spec §3.3, 7004) and per-channel
    /// scales along <paramref name="expectedAxis"/> with <paramref name="channels"/> entries (§3.2, 7005).
    /// </summary>
    public static Weights CheckWeights(LoweringRequest r, IntegerInput w, int expectedAxis, string axisText)
    {
        var node = r.Node;
        var data = r.Constant(w.Tensor) ?? throw new InvalidOperationException($"weight '{w.Tensor}' is not an initializer");
        if (w.ZeroPoints.Any(z => z != 0))
        {
            int at = w.ZeroPoints.ToList().FindIndex(z => z != 0);
            throw Error(r, ErrorCode.ConvertAsymmetricWeight,
                $"weight '{(w.FileTensor.Length > 0 ? w.FileTensor : w.Tensor)}' of {node.Describe()} has zero point {w.ZeroPoints[at] + w.StoredZeroPointOffset}{(w.ZeroPoints.Count > 1 ? $" at channel {at}" : "")} (DequantizeLinear '{w.DequantizeNode}'); " +
                "weights must be symmetric: int8/int16 with zero point 0 (ONNX Runtime: weight_type=QuantType.QInt8, symmetric weights)");
        }
        if (w.Scales.Count > 1)
        {
            int axis = w.Axis is { } a && a < 0 ? a + data.Dims.Length : w.Axis ?? 1;
            if (axis != expectedAxis || w.Scales.Count != data.Dims[expectedAxis])
                throw Error(r, ErrorCode.ConvertWeightAxis,
                    $"weight '{w.Tensor}' of {node.Describe()} is quantized per channel along axis {axis} ({w.Scales.Count} scales); " +
                    $"per-channel weights must run along the output channels, axis {expectedAxis} ({axisText}): re-export per channel along axis {expectedAxis}, or per tensor");
        }
        var values = data.Type switch
        {
            ElementType.Int8 => data.As<sbyte>().ToArray().Select(v => (int)v).ToArray(),
            ElementType.Int16 => data.As<short>().ToArray().Select(v => (int)v).ToArray(),
            _ => throw Error(r, ErrorCode.ConvertUnsupportedQuantType, $"weight '{w.Tensor}' of {node.Describe()} is {data.Type.OnnxName()}; weights must be int8 or int16"),
        };
        return new Weights(values, data.Dims, w);
    }

    /// <summary>
    /// Spec §4.2: q_b[m] = rne(b[m] / S_m) with S_m = (double)s_x·(double)s_w[m] (times alpha/beta for Gemm), or the
    /// int32 bias of a foreign DQ re-expressed when its scale is not exactly fl32(s_x·s_w[m]). Null without a bias,
    /// or a reason (via <paramref name="island"/>) when the bias is not a constant.
    /// </summary>
    public static int[]? Bias(LoweringRequest r, int index, double[] biasScale, double beta, out string? island)
    {
        island = null;
        var name = r.Node.InputOrNull(index);
        if (name is null) return null;
        int channels = biasScale.Length;
        double[] real;
        int?[] exact = new int?[channels];
        if (r.Inputs.Count > index && r.Inputs[index] is { Format.Type: ElementType.Int32 } qb)
        {
            var data = r.Constant(qb.Tensor)!;
            var ints = data.As<int>();
            if (ints.Length != channels && ints.Length != 1) { island = $"the int32 bias has {ints.Length} values for {channels} channels"; return null; }
            real = new double[channels];
            for (int m = 0; m < channels; m++)
            {
                float sb = qb.Scales[qb.Scales.Count == 1 ? 0 : m];
                int v = ints[ints.Length == 1 ? 0 : m];
                real[m] = (double)sb * v;
                // Spec §3.3: a bias stored at exactly fl32(s_x·s_w[m]) is used as it is.
                if (beta == 1 && BitConverter.SingleToInt32Bits((float)biasScale[m]) == BitConverter.SingleToInt32Bits(sb)) exact[m] = v;
            }
        }
        else if (r.Constant(name) is { Type: ElementType.Float } b)
        {
            var f = b.As<float>();
            if (f.Length != channels && f.Length != 1) { island = $"the bias has {f.Length} values for {channels} channels"; return null; }
            real = new double[channels];
            for (int m = 0; m < channels; m++) real[m] = f[f.Length == 1 ? 0 : m];
        }
        else
        {
            island = $"the bias '{name}' is not a float or int32 initializer";
            return null;
        }
        var q = new int[channels];
        for (int m = 0; m < channels; m++)
        {
            double v = exact[m] ?? Math.Round(beta * real[m] / biasScale[m], MidpointRounding.ToEven);
            if (!(Math.Abs(v) <= int.MaxValue))
                throw Error(r, ErrorCode.ConvertBiasOverflow,
                    $"the bias of {r.Node.Describe()}, channel {m}, needs {ConvertErrors.Num(v)} steps at scale s_x·s_w = {ConvertErrors.Num(biasScale[m])}, beyond int32: " +
                    "raise that channel's weight scale or the input scale (Quant.Build's export does this itself)");
            q[m] = (int)v;
        }
        return q;
    }

    /// <summary>The clamp of a fused Relu/Clip (P6, spec §4.4) in output integers: [Q_T(lo), Q_T(hi)].</summary>
    public static (int Lo, int Hi) Clamp(LoweringRequest r, IntFormat y)
    {
        var (qmin, qmax) = (y.QMin, y.QMax);
        var (lo, hi) = FloatClamp(r);
        int qlo = float.IsNegativeInfinity(lo) ? qmin : QuantizeRun.Scalar(lo, y.Scale, y.ZeroPoint, qmin, qmax);
        int qhi = float.IsPositiveInfinity(hi) ? qmax : QuantizeRun.Scalar(hi, y.Scale, y.ZeroPoint, qmin, qmax);
        return (qlo, qhi);
    }

    /// <summary>Spec §4.3: 32 when max|x − z_x|·Σ_k|w[m, k]| + |q_b[m]| &lt; 2^31 for every channel, else 64.</summary>
    public static int AccBits(IEnumerable<long> bounds) => bounds.All(b => b < 1L << 31) ? 32 : 64;

    public static long MaxAbs(IntFormat x) => Math.Max(x.QMax - (long)x.ZeroPoint, x.ZeroPoint - (long)x.QMin);

    /// <summary>(m, n) = Mult(M) per channel (spec §2.1); the realM values must be positive.</summary>
    public static (int[] M, int[] N) Multipliers(double[] realM)
    {
        var m = new int[realM.Length];
        var n = new int[realM.Length];
        for (int i = 0; i < realM.Length; i++) (m[i], n[i]) = Requantize.Mult(realM[i]);
        return (m, n);
    }

    public static string AddInts(LoweringRequest r, string hint, int[] values) =>
        r.Emit.AddInitializer(hint, TensorData.From(hint, ElementType.Int32, [values.Length], values.AsSpan()));

    /// <summary>
    /// Emits one node per output format: inputs <paramref name="inputs"/> + multiplier + shift, the copied attributes,
    /// and the output conventions (to, y_zero_point, clamp, acc_bits). <paramref name="realM"/> gives M per channel for
    /// one output format (from its s_y).
    /// </summary>
    public static void Emit(LoweringRequest r, string opType, IReadOnlyList<string> inputs, IEnumerable<AttributeValue> attributes,
        Func<IntFormat, double[]> realM, int accBits)
    {
        var node = r.Node;
        bool several = r.Outputs.Count > 1;
        var copied = attributes.ToList();
        foreach (var o in r.Outputs)
        {
            var (m, n) = Multipliers(realM(o.Format));
            // Per-tensor weights give one multiplier for every channel: store it once.
            if (m.Distinct().Count() == 1 && n.Distinct().Count() == 1) (m, n) = ([m[0]], [n[0]]);
            string suffix = several ? "_" + (o.Format.Type == ElementType.Int16 ? "int16" : "int8") : "";
            var mName = AddInts(r, $"{node.Name}{suffix}_multiplier", m);
            var nName = AddInts(r, $"{node.Name}{suffix}_shift", n);
            var q = r.Emit.AddNode(node.Name.Length > 0 ? node.Name + suffix : o.Tensor + "_node", opType, LoweringEmitter.Domain,
                [.. inputs, mName, nName], [o.Tensor]);
            foreach (var a in copied) q.Set(a);
            var (lo, hi) = Clamp(r, o.Format);
            q.Set(AttributeValue.Of("to", (long)o.Format.Type));
            q.Set(AttributeValue.Of("y_zero_point", (long)o.Format.ZeroPoint));
            q.Set(AttributeValue.Of("clamp_min", (long)lo));
            q.Set(AttributeValue.Of("clamp_max", (long)hi));
            q.Set(AttributeValue.Of("acc_bits", (long)accBits));
        }
    }

    /// <summary>The float activation the kernel applies after fl32(acc·S_m) (a fused HardSwish), or null for none or Relu/Clip.</summary>
    public static string? FloatActivation(LoweringRequest r) => r.FusedActivation is { OpType: "HardSwish" } ? "HardSwish" : null;

    /// <summary>
    /// A fused float activation (spec §4.4 "Fused float activation"): one node per output format computing
    /// QuantizeLinear(activation(fl32((double)acc·S_m)), s_y, z_y), what the qat model's Conv → HardSwish → Q computes
    /// with the accumulator exact; the exact S_m (float64) stands in place of multiplier/shift.
    /// </summary>
    public static void EmitActivated(LoweringRequest r, string opType, IReadOnlyList<string> inputs, IEnumerable<AttributeValue> attributes,
        double[] s, string activation, int accBits)
    {
        var node = r.Node;
        bool several = r.Outputs.Count > 1;
        var copied = attributes.ToList();
        string? sName = null;
        foreach (var o in r.Outputs)
        {
            sName ??= AddScale(r, $"{node.Name}_activation_scale", s);
            string suffix = several ? "_" + (o.Format.Type == ElementType.Int16 ? "int16" : "int8") : "";
            var q = r.Emit.AddNode(node.Name.Length > 0 ? node.Name + suffix : o.Tensor + "_node", opType, LoweringEmitter.Domain,
                [.. inputs, sName], [o.Tensor]);
            foreach (var a in copied) q.Set(a);
            q.Set(AttributeValue.Of("to", (long)o.Format.Type));
            q.Set(AttributeValue.Of("y_scale", o.Format.Scale));
            q.Set(AttributeValue.Of("y_zero_point", (long)o.Format.ZeroPoint));
            q.Set(AttributeValue.Of("activation", activation));
            q.Set(AttributeValue.Of("acc_bits", (long)accBits));
        }
    }

    /// <summary>S_m per channel as a float64 initializer (stored once when every channel shares it).</summary>
    private static string AddScale(LoweringRequest r, string hint, double[] s)
    {
        var scale = s.Distinct().Count() == 1 ? [s[0]] : s;
        return r.Emit.AddInitializer(hint, TensorData.From("s", ElementType.Double, [scale.Length], scale.AsSpan()));
    }

    /// <summary>
    /// The float output of spec §4.4 for float readers: <c>to</c> = float, the exact S_m (float64, per channel) in
    /// place of multiplier/shift, and the fused Relu/Clip as float bounds.
    /// </summary>
    public static void EmitFloat(LoweringRequest r, string opType, IReadOnlyList<string> inputs, IEnumerable<AttributeValue> attributes, double[] s, int accBits)
    {
        if (r.FloatOutput is not { } tensor) return;
        var node = r.Node;
        var sName = AddScale(r, $"{node.Name}_float_scale", s);
        var q = r.Emit.AddNode(node.Name.Length > 0 ? node.Name : tensor + "_node", opType, LoweringEmitter.Domain, [.. inputs, sName], [tensor]);
        foreach (var a in attributes) q.Set(a);
        q.Set(AttributeValue.Of("to", (long)ElementType.Float));
        if (FloatActivation(r) is { } activation) q.Set(AttributeValue.Of("activation", activation));
        var (lo, hi) = FloatClamp(r);
        if (!float.IsNegativeInfinity(lo)) q.Set(AttributeValue.Of("clip_min", lo));
        if (!float.IsPositiveInfinity(hi)) q.Set(AttributeValue.Of("clip_max", hi));
        q.Set(AttributeValue.Of("acc_bits", (long)accBits));
    }

    /// <summary>The fused Relu/Clip bounds in float (±∞ when absent).</summary>
    private static (float Lo, float Hi) FloatClamp(LoweringRequest r)
    {
        var act = r.FusedActivation;
        if (act is null || FloatActivation(r) is not null) return (float.NegativeInfinity, float.PositiveInfinity);
        if (act.OpType == "Relu") return (0, float.PositiveInfinity);
        if (act.Has("min") || act.Has("max")) return (act.GetFloat("min", float.NegativeInfinity), act.GetFloat("max", float.PositiveInfinity));
        float lo = act.InputOrNull(1) is { } a ? r.Constant(a)!.As<float>()[0] : float.NegativeInfinity;
        float hi = act.InputOrNull(2) is { } b ? r.Constant(b)!.As<float>()[0] : float.PositiveInfinity;
        return (lo, hi);
    }

    /// <summary>The node's attributes named in <paramref name="names"/>, as they are.</summary>
    public static IEnumerable<AttributeValue> Copy(Node node, params string[] names) =>
        names.Where(node.Has).Select(n => node.Attributes[n]);

    /// <summary>Why a per-tensor int8/int16 activation input is missing, or null when it is there.</summary>
    public static string? ActivationMissing(LoweringRequest r, int index, string what)
    {
        if (r.Inputs.Count <= index || r.Inputs[index] is not { } x) return $"{what} is not a quantized activation";
        if (x.Format.Type is not (ElementType.Int8 or ElementType.Int16)) return $"{what} is {x.Format.Type.OnnxName()}, not int8/int16";
        return null;
    }
}
