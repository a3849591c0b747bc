using Quant.Core.Calibration;
using Quant.Core.Config;
using Quant.Core.Precision;
using Quant.Engine.Kernels;
using Quant.Engine.Kernels.Integer;
using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// What the non-GEMM integer rules share: the target check, the data inputs as integers, the §1/§2 parameter
/// arithmetic (Mult from float32 scales in double, Q_T), and emitting <c>quant.build</c> nodes with the attribute
/// conventions of docs/quantized-model.md.
/// </summary>
internal static class RuleParts
{
    /// <summary>
    /// Null when every data input of the node (<see cref="TargetRules.IsDataInput"/>) is an integer edge whose type the
    /// target runs this op with; else the island reason.
    /// </summary>
    public static string? CheckInputs(LoweringRequest r)
    {
        var node = r.Node;
        var support = TargetRules.For(node.OpType);
        for (int i = 0; i < node.Inputs.Count; i++)
        {
            if (node.Inputs[i].Length == 0 || !TargetRules.IsDataInput(node.OpType, i)) continue;
            var input = i < r.Inputs.Count ? r.Inputs[i] : null;
            if (input is null) return $"input {i} ('{node.Inputs[i]}') is float";
            var t = input.Format.Type;
            if (t == ElementType.Int8 ? !support.Int8 : t == ElementType.Int16 ? !support.Int16 : true)
                return $"{node.OpType} has no {t.OnnxName()} rule on the target";
        }
        return null;
    }

    /// <summary>The integer version of data input <paramref name="index"/> (checked by <see cref="CheckInputs"/>).</summary>
    public static IntegerInput In(LoweringRequest r, int index) =>
        r.Inputs[index] ?? throw new InvalidOperationException($"node '{r.Node.Name}': input {index} is not an integer edge");

    /// <summary>Spec §2.1 for a real multiplier computed in double from float32 scales.</summary>
    public static (int M, int N) Mult(double multiplier) => Quant.Engine.Kernels.Integer.Requantize.Mult(multiplier);

    /// <summary>Spec §1's Q_T(x; s, z): the qat model's own QuantizeLinear (float32 division, ties to even, NaN to qmin).</summary>
    public static int Quantize(float x, IntFormat f) => QuantizeRun.Scalar(x, f.Scale, f.ZeroPoint, f.QMin, f.QMax);

    /// <summary>The <c>to</c> attribute's value for an output format.</summary>
    public static long To(IntFormat f) => (long)f.Type;

    public static AttributeValue Int(string name, long v) => AttributeValue.Of(name, v);
    public static AttributeValue Float(string name, float v) => AttributeValue.Of(name, v);

    /// <summary>An int32 initializer (multipliers, shifts, tables).</summary>
    public static string Int32s(LoweringEmitter emit, string hint, int[] values) =>
        emit.AddInitializer(hint, TensorData.From(hint, ElementType.Int32, [values.Length], values.AsSpan()));

    /// <summary>Adds a node and sets its attributes.</summary>
    public static Node Add(LoweringEmitter emit, string hint, string opType, string domain, IEnumerable<string> inputs, IEnumerable<string> outputs,
        params IEnumerable<AttributeValue> attributes)
    {
        var n = emit.AddNode(hint, opType, domain, inputs, outputs);
        foreach (var a in attributes) n.Set(a);
        return n;
    }

    /// <summary>Spec §7/§6.4: <c>y = clamp(Rq(x − z_x; Mult(s_x/s_y), z_y), lo, hi)</c> as one QRequantize node.</summary>
    public static void EmitRequantize(LoweringEmitter emit, string hint, string input, IntFormat from, IntegerOutput to, int? clampMin = null, int? clampMax = null)
    {
        var (m, n) = Mult((double)from.Scale / to.Format.Scale);
        var attrs = new List<AttributeValue>
        {
            Int("to", To(to.Format)), Int("x_zero_point", from.ZeroPoint), Int("y_zero_point", to.Format.ZeroPoint),
        };
        if (clampMin is { } lo) attrs.Add(Int("clamp_min", lo));
        if (clampMax is { } hi) attrs.Add(Int("clamp_max", hi));
        Add(emit, hint, "QRequantize", LoweringEmitter.Domain,
            [input, Int32s(emit, hint + "_multiplier", [m]), Int32s(emit, hint + "_shift", [n])], [to.Tensor], attrs);
    }

    /// <summary>
    /// QMul/QDiv for output <paramref name="k"/>: inputs A, B and the multiplier/shift initializers, the zero points and
    /// the output format as attributes.
    /// </summary>
    public static void EmitBinary(LoweringRequest r, int k, string opType, int[] multipliers, int[] shifts)
    {
        var (a, b, y) = (In(r, 0), In(r, 1), r.Outputs[k]);
        var hint = Hint(r.Node, k, r.Outputs.Count);
        Add(r.Emit, hint, opType, LoweringEmitter.Domain,
            [a.Tensor, b.Tensor, Int32s(r.Emit, hint + "_multiplier", multipliers), Int32s(r.Emit, hint + "_shift", shifts)], [y.Tensor],
            Int("a_zero_point", a.Format.ZeroPoint), Int("b_zero_point", b.Format.ZeroPoint),
            Int("to", To(y.Format)), Int("y_zero_point", y.Format.ZeroPoint));
    }

    /// <summary>
    /// The ops whose multiplier depends on the run's shape (QAveragePool, QGlobalAveragePool, QReduceMean, QResize): the
    /// qat node's own attributes and non-data inputs, the integer input, and both formats with their float32 scales.
    /// </summary>
    public static void EmitWithScales(LoweringRequest r, string opType)
    {
        var x = In(r, 0);
        var inputs = r.Node.Inputs.ToList();
        inputs[0] = x.Tensor;
        for (int k = 0; k < r.Outputs.Count; k++)
        {
            var y = r.Outputs[k];
            var attrs = SameAttributes(r.Node).Concat(
            [
                Int("x_zero_point", x.Format.ZeroPoint), Float("x_scale", x.Format.Scale),
                Int("to", To(y.Format)), Int("y_zero_point", y.Format.ZeroPoint), Float("y_scale", y.Format.Scale),
            ]).ToList();
            Add(r.Emit, Hint(r.Node, k, r.Outputs.Count), opType, LoweringEmitter.Domain, inputs, [y.Tensor], attrs);
        }
    }

    /// <summary>The calibration form of an integer format, for <see cref="LookupTables"/>.</summary>
    public static QuantParams Params(IntFormat f) =>
        new(f.Type == ElementType.Int8 ? QType.Int8 : QType.Int16, [f.Scale], [f.ZeroPoint], null, "convert");

    /// <summary>The attributes of the qat node, copied (a standard op on integers keeps its own).</summary>
    public static IEnumerable<AttributeValue> SameAttributes(Node node) => node.Attributes.Values;

    /// <summary>Name hint for the nodes replacing <paramref name="node"/> for output format <paramref name="k"/>.</summary>
    public static string Hint(Node node, int k, int of)
    {
        var name = node.Name.Length > 0 ? node.Name : node.OpType;
        return of == 1 ? name : $"{name}_{k}";
    }
}
