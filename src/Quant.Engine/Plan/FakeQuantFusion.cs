using Quant.Engine.Kernels;
using Quant.Onnx;

namespace Quant.Engine;

/// <summary>
/// Finds the QuantizeLinear → DequantizeLinear pairs of a fake-quant (qat) model that can run as one
/// <see cref="FakeQuantizeKernel"/> pass: a qat model has such a pair after nearly every float op, and as two kernels
/// each pair writes an int8/int16 tensor only to read it back. A pair qualifies when the quantizer reads a runtime float
/// value, both nodes are per tensor (one-element float scale and 8/16-bit zero point, constants, no
/// <c>block_size</c>/<c>output_dtype</c>), the dequantizer has the quantizer's integer type, and the dequantizer is the
/// only reader of the integer value, which is not a graph output. Only the unobserved plan uses the result: observers,
/// <see cref="RunOptions.KeepValues"/> and <see cref="InferenceSession.RunDownstream"/> run the unfused steps and so
/// still see (and may replace) every integer value and every scale.
/// </summary>
internal static class FakeQuantFusion
{
    /// <summary>A fused pair: the step indices of its two nodes and the node that stands for both.</summary>
    internal sealed record Pair(int Quantize, int Dequantize, Node Node, int[] Inputs, int[] Outputs);

    /// <summary>
    /// Returns, in order, either an index into <paramref name="steps"/> (kept as it is) or a <see cref="Pair"/>, which takes
    /// the quantizer's place (its input exists there; the dequantizer's readers all come later).
    /// </summary>
    public static List<object> Plan(IReadOnlyList<ElementwiseFusion.StepView> steps, Func<int, Tensor?> constantOf, Func<int, bool> isFloatWithRank,
        Func<int, bool> isGraphOutput, Func<int, string> nameOf)
    {
        var readers = new Dictionary<int, List<int>>();
        for (int s = 0; s < steps.Count; s++)
            foreach (var i in steps[s].Inputs.Distinct())
                if (i >= 0) { if (!readers.TryGetValue(i, out var l)) readers[i] = l = []; l.Add(s); }

        var pairOf = new Dictionary<int, Pair>();
        var absorbed = new HashSet<int>();
        for (int s = 0; s < steps.Count; s++)
        {
            var q = steps[s];
            if (q.Node.OpType != "QuantizeLinear" || !q.Node.IsDefaultDomain || q.Outputs.Length != 1 || q.Outputs[0] < 0) continue;
            int x = q.Inputs[0], integer = q.Outputs[0];
            if (x < 0 || constantOf(x) is not null || !isFloatWithRank(x) || isGraphOutput(integer)) continue;
            if (PerTensorZeroPoint(q, constantOf) is not { } type) continue;
            if (!readers.TryGetValue(integer, out var rs) || rs.Count != 1) continue;
            var d = steps[rs[0]];
            if (d.Node.OpType != "DequantizeLinear" || !d.Node.IsDefaultDomain || d.Inputs[0] != integer
                || d.Outputs.Length != 1 || d.Outputs[0] < 0 || PerTensorZeroPoint(d, constantOf) != type) continue;
            int[] inputs = [x, q.Inputs[1], q.Inputs[2], d.Inputs[1], d.Inputs[2]];
            var node = new Node($"fakequant[{q.Node.Name},{d.Node.Name}]", "FakeQuantize", "quant.engine",
                inputs.Select(nameOf), [nameOf(d.Outputs[0])]);
            pairOf[s] = new Pair(s, rs[0], node, inputs, [d.Outputs[0]]);
            absorbed.Add(rs[0]);
        }

        var plan = new List<object>(steps.Count);
        for (int s = 0; s < steps.Count; s++)
        {
            if (pairOf.TryGetValue(s, out var pair)) plan.Add(pair);
            else if (!absorbed.Contains(s)) plan.Add(s);
        }
        return plan;
    }

    /// <summary>The zero point's type when the Q or DQ node is per tensor with constant one-element parameters.</summary>
    private static ElementType? PerTensorZeroPoint(ElementwiseFusion.StepView st, Func<int, Tensor?> constantOf)
    {
        var n = st.Node;
        if (st.Inputs.Length != 3 || st.Inputs[1] < 0 || st.Inputs[2] < 0) return null;
        if (n.Has("block_size") && n.GetInt("block_size", 0) != 0 || n.Has("output_dtype")) return null;
        var scale = constantOf(st.Inputs[1]);
        var zp = constantOf(st.Inputs[2]);
        if (scale is null || zp is null || scale.Type != ElementType.Float || scale.Length != 1 || scale.Rank > 1
            || !QuantizeLinearKernels.IsQuantType(zp.Type) || !zp.Shape.AsSpan().SequenceEqual(scale.Shape)) return null;
        return zp.Type;
    }
}
