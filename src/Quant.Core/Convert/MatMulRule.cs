using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// MatMul → <c>QMatMul</c> (docs/quantization-spec.md §4): with a 2-D weight B (per channel along the last axis), or
/// with two activations (rec's attention), acc = Σ_k (a − z_a)(b − z_b).
/// </summary>
public sealed class MatMulRule : IFloatOutputRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["MatMul"];

    public string? Lower(LoweringRequest r)
    {
        if (GemmLowering.ActivationMissing(r, 0, "input A") is { } why) return why;
        var a = r.Inputs[0]!;
        if (r.Inputs.Count < 2 || r.Inputs[1] is not { } bIn) return "input B is not quantized";
        long maxA = GemmLowering.MaxAbs(a.Format);
        double[] s;
        int accBits;
        if (bIn.IsConstant)
        {
            var dims = r.Constant(bIn.Tensor)!.Dims;
            if (dims.Length != 2) return $"the weights B have rank {dims.Length}; QMatMul takes 2-D weights";
            var w = GemmLowering.CheckWeights(r, bIn, 1, "MatMul weights [K, N]");
            int k = (int)dims[0], n = (int)dims[1];
            s = new double[n];
            for (int j = 0; j < n; j++) s[j] = (double)a.Format.Scale * bIn.Scales[bIn.Scales.Count == 1 ? 0 : j];
            accBits = GemmLowering.AccBits(Enumerable.Range(0, n).Select(j =>
            {
                long sum = 0;
                for (int t = 0; t < k; t++) sum += Math.Abs(w.Values[t * n + j]);
                return maxA * sum;
            }));
        }
        else
        {
            if (bIn.Format.Type is not (ElementType.Int8 or ElementType.Int16)) return $"input B is {bIn.Format.Type.OnnxName()}, not int8/int16";
            s = [(double)a.Format.Scale * bIn.Format.Scale];
            // K from the inferred shape of A; unknown K leaves the int32 bound unproven (int64 is exact too).
            var shape = r.Shape(r.Node.Inputs[0]);
            long k = shape is { Length: > 0 } && shape[^1].IsKnown ? shape[^1].Value : -1;
            accBits = k >= 0 ? GemmLowering.AccBits([k * maxA * GemmLowering.MaxAbs(bIn.Format)]) : 64;
        }
        var attrs = new[]
        {
            AttributeValue.Of("a_zero_point", (long)a.Format.ZeroPoint),
            AttributeValue.Of("b_zero_point", bIn.IsConstant ? 0L : bIn.Format.ZeroPoint),
        };
        GemmLowering.Emit(r, "QMatMul", [a.Tensor, bIn.Tensor], attrs, y => s.Select(v => v / y.Scale).ToArray(), accBits);
        GemmLowering.EmitFloat(r, "QMatMul", [a.Tensor, bIn.Tensor], attrs, s, accBits);
        return null;
    }
}
