using Quant.Onnx;

namespace Quant.Core.Conversion;

/// <summary>
/// Gemm → <c>QGemm</c> (docs/quantization-spec.md §4.1): alpha goes into the multiplier, beta·C becomes the int32
/// bias q_b = rne(beta·C / (alpha·s_a·s_b)); transA/transB are layout only. B must be a weight (per channel along
/// the output columns: axis 0 with transB = 1, else 1).
/// </summary>
public sealed class GemmRule : IFloatOutputRule
{
    public IReadOnlyList<string> OpTypes { get; } = ["Gemm"];

    public string? Lower(LoweringRequest r)
    {
        if (GemmLowering.ActivationMissing(r, 0, "input A") is { } why) return why;
        var a = r.Inputs[0]!;
        if (r.Inputs.Count < 2 || r.Inputs[1] is not { IsConstant: true } bIn) return "input B is not a quantized weight";
        float alpha = r.Node.GetFloat("alpha", 1f), beta = r.Node.GetFloat("beta", 1f);
        if (!(alpha > 0) || !float.IsFinite(alpha)) return $"alpha {alpha} is not a positive finite number";
        bool transB = r.Node.GetInt("transB", 0) != 0;
        var dims = r.Constant(bIn.Tensor)!.Dims;
        if (dims.Length != 2) return $"B has rank {dims.Length}";
        var w = GemmLowering.CheckWeights(r, bIn, transB ? 0 : 1, transB ? "Gemm B [N, K] with transB = 1" : "Gemm B [K, N]");
        int k = (int)(transB ? dims[1] : dims[0]), n = (int)(transB ? dims[0] : dims[1]);
        var s = new double[n];
        for (int j = 0; j < n; j++) s[j] = (double)alpha * a.Format.Scale * bIn.Scales[bIn.Scales.Count == 1 ? 0 : j];
        var qb = GemmLowering.Bias(r, 2, s, beta, out var island);
        if (island is not null) return island;
        long maxA = GemmLowering.MaxAbs(a.Format);
        int accBits = GemmLowering.AccBits(Enumerable.Range(0, n).Select(j =>
        {
            long sum = 0;
            for (int t = 0; t < k; t++) sum += Math.Abs(w.Values[transB ? j * k + t : t * n + j]);
            return maxA * sum + (qb is null ? 0 : Math.Abs((long)qb[j]));
        }));
        string bias = qb is null ? "" : GemmLowering.AddInts(r, $"{r.Node.Name}_bias_int32", qb);
        var attrs = GemmLowering.Copy(r.Node, "transA", "transB").Append(AttributeValue.Of("a_zero_point", (long)a.Format.ZeroPoint));
        GemmLowering.Emit(r, "QGemm", [a.Tensor, bIn.Tensor, bias], attrs, y => s.Select(v => v / y.Scale).ToArray(), accBits);
        GemmLowering.EmitFloat(r, "QGemm", [a.Tensor, bIn.Tensor, bias], attrs, s, accBits);
        return null;
    }
}
